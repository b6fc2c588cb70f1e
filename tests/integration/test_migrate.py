"""``agent-sessions migrate`` and the layout record, on a store made by the version before partitioned
keys: ``tests/data/layout1_store.json`` was written by that version's code (``tools/make_layout1_store.py``),
with the answers it gave about the store. After the migration this version must give the same answers,
replay the same Idempotency-Key, relay what was left in the outbox, purge the deleted agent, and keep
every report equal to a recount."""

from __future__ import annotations

import json
import logging
import re
import subprocess
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.redis import layout
from agent_sessions.redis.keys import LAYOUT, Keys
from agent_sessions.redis.migrate import Migration
from agent_sessions.redis.server import RedisServer
from agent_sessions.sessions.purge import Purger
from agent_sessions.web.app import create_app
from tests.support.clock import redis_executable, redis_now_ms
from tests.support.inprocess import InProcess
from tests.support.processes import command, env
from tests.support.recount import assert_report_matches, recount
from tests.support.stored_time import delta_to_now, shifted

STORED = json.loads((Path(__file__).parent.parent / "data" / "layout1_store.json").read_text())
PARTITIONS = 8  # not the default: a part built without this process's layout would miss every agent
KEYS = Keys(partitions=PARTITIONS)
# The names of layout 1's keys of an agent (none may be left after the migration).
LAYOUT1_AGENT_KEY = re.compile(
    r"as:(agent|session|sessions|idx|history|purge|report|report:state|report:ooo|rules|escalations|idem:snap):agt_"
    r"|as:escalation:evt_|as:(agents|purges|expiry|indexes|outbox|events)$|as:(apikey|rl:key):[0-9a-f]|as:wh[edbql]:whe_"
)


def load(conn: redis.Redis, rows: list[dict[str, Any]]) -> None:
    for row in rows:
        key, value = row["key"], row["value"]
        match row["type"]:
            case "string":
                conn.set(key, value)
            case "hash":
                conn.hset(key, mapping=value)
            case "list":
                conn.rpush(key, *value)
            case "zset":
                conn.zadd(key, {member: score for member, score in value})
            case "stream":
                for entry_id, fields in value["entries"]:
                    conn.xadd(key, fields, id=entry_id)
                for group in value["groups"]:
                    conn.xgroup_create(key, group["name"], id=group["last_delivered_id"], mkstream=True)
        if row["ttl_ms"] > 0:
            conn.pexpire(key, row["ttl_ms"])


def snapshot(conn: redis.Redis) -> dict[str, Any]:
    """Every key with its value and whether it expires."""
    read: dict[str, Callable[[str], Any]] = {
        "string": conn.get,
        "hash": conn.hgetall,
        "list": lambda key: conn.lrange(key, 0, -1),
        "zset": lambda key: conn.zrange(key, 0, -1, withscores=True),
        "stream": conn.xrange,
    }
    return {key: (read[str(conn.type(key))](key), conn.pttl(key) > 0) for key in conn.scan_iter("*")}


@pytest.fixture
def data(sync_redis: redis.Redis) -> dict[str, Any]:
    """The stored store and its answers, as if made a minute ago by Redis's clock (its sessions expire
    relative to that, whatever the date)."""
    return cast(dict[str, Any], shifted(STORED, delta_to_now(json.dumps(STORED), now_ms=redis_now_ms(sync_redis))))


@pytest.fixture
def layout1(redis_url: str, sync_redis: redis.Redis, data: dict[str, Any]) -> str:
    load(sync_redis, data["keys"])
    return redis_url


@pytest.fixture
def settings(layout1: str) -> Settings:
    return Settings(redis_url=layout1, partitions=PARTITIONS, webhook_allow_private_networks=True)


def migrate(redis_url: str, partitions: int = PARTITIONS) -> subprocess.CompletedProcess[str]:
    environment = env(REDIS_URL=redis_url, PARTITIONS=str(partitions))
    return subprocess.run([command(), "migrate"], capture_output=True, text=True, env=environment, timeout=60)


def test_an_earlier_store_is_refused_until_migrated_then_served_as_before(
    settings: Settings, sync_redis: redis.Redis, data: dict[str, Any]
) -> None:
    with pytest.raises(ConfigError, match="agent-sessions migrate"), TestClient(create_app(settings)):
        pass
    with pytest.raises(ConfigError, match="agent-sessions migrate"):
        layout.check(sync_redis, KEYS)  # what `agent-sessions worker` checks at start

    first = migrate(settings.redis_url or "")
    assert first.returncode == 0, first.stderr
    moved = dict(line.rsplit(": ", 1) for line in first.stdout.splitlines() if ": " in line)
    assert moved["agents"] == "2" and moved["sessions"] == "19" and moved["idempotency records"] == "1"
    assert moved["reports"] == "3" and moved["escalation rules"] == "1" and moved["purge lists"] == "1"
    assert moved["escalation records"] == "1" and moved["outbox entries"] == "2" and moved["agent lists"] == "2"
    assert moved["API keys and their buckets"] == "2" and int(moved["webhook endpoint keys"]) >= 4
    assert f"key layout {LAYOUT} with PARTITIONS={PARTITIONS}" in first.stdout
    assert not [key for key in sync_redis.scan_iter("*") if LAYOUT1_AGENT_KEY.match(key)]
    again = migrate(settings.redis_url or "")
    assert again.returncode == 0 and "nothing to move" in again.stdout, again.stdout + again.stderr

    admin = {"x-api-key": data["admin"]}
    with TestClient(create_app(settings)) as client:
        for path, answer in data["answers"].items():
            response = client.get(path, headers=admin)
            assert response.status_code == 200 and response.json() == answer, path
        # The Idempotency-Key record moved with its answer: the retry is replayed, not applied again.
        replay = client.patch(
            "/v2/agents/agt_alpha/sessions/ase_0",
            json={"description": "second"},
            headers={**admin, "idempotency-key": "idem-1"},
        )
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.json() == data["answers"]["/v2/agents/agt_alpha/sessions/ase_0"]
        # The editor key (scoped to one agent) still works, through the write's own admission.
        editor = {"x-api-key": data["editor"]}
        patched = client.patch("/v2/agents/agt_alpha/sessions/ase_3", json={"enabled": False}, headers=editor)
        assert patched.status_code == 200 and patched.json()["version"] == 2
        with InProcess(settings, deliveries=False) as pipeline:
            pipeline.drain()  # the events written before the migration and left in the outbox, and this one
        while Purger(sync_redis, keys=KEYS).step():
            pass
        assert client.get("/v2/agents/agt_gone/sessions", headers=admin).status_code == 404
        for agent in ("agt_alpha", "agt_beta"):
            report = client.get(f"/v2/agents/{agent}/report", headers=admin).json()
            expected = recount(sync_redis, agent, settings.report_dimensions, keys=KEYS)
            assert_report_matches(report, expected)
            assert report["updates"]["total"] == expected["updates"]["total"]
        assert client.get("/v2/agents/agt_beta/report", headers=admin).json()["sessions"]["total"] == 7  # + ase_late
    # The purge found every key of the deleted agent's sessions (its report stays, as it always has).
    assert not [key for key in sync_redis.scan_iter("*") if "agt_gone" in key and not key.startswith("as:report")]


def test_an_interrupted_migration_finishes_where_it_stopped(
    layout1: str, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, data: dict[str, Any]
) -> None:
    """Stopped after some keys, run again: the same store as one run makes (compared on a copy)."""
    whole = RedisServer(tmp_path / "whole", executable=redis_executable()).start()
    try:
        reference = redis.Redis.from_url(whole.url, decode_responses=True)
        load(reference, data["keys"])
        done = Migration(reference, KEYS).run()
        expected = snapshot(reference)
        reference.close()
    finally:
        whole.stop()

    renamed = 0
    rename = Migration._rename

    def crash_after_ten(self: Migration, kind: str, key: str, new: str) -> None:
        nonlocal renamed
        renamed += 1
        if renamed > 10:
            raise redis.ConnectionError("killed")
        rename(self, kind, key, new)

    with monkeypatch.context() as patched:
        patched.setattr(Migration, "_rename", crash_after_ten)
        with pytest.raises(redis.ConnectionError):
            Migration(sync_redis, KEYS).run()
    with pytest.raises(ConfigError):  # not recorded yet: still refused
        layout.check(sync_redis, KEYS)
    rest = Migration(sync_redis, KEYS).run()
    assert 0 < sum(rest.values()) < sum(done.values())
    assert snapshot(sync_redis) == expected
    assert Migration(sync_redis, KEYS).run() == Counter()


def test_partitions_are_recorded_once_and_a_process_with_another_value_refuses(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    layout.check(sync_redis, KEYS)  # a new store: recorded
    assert sync_redis.hgetall(KEYS.layout) == {"version": str(LAYOUT), "partitions": str(PARTITIONS)}
    layout.check(sync_redis, KEYS)
    with pytest.raises(ConfigError, match=f"PARTITIONS={PARTITIONS}"):
        layout.check(sync_redis, Keys(partitions=PARTITIONS * 2))
    with (
        pytest.raises(ConfigError, match=f"PARTITIONS={PARTITIONS}"),
        TestClient(create_app(Settings(redis_url=redis_url))),
    ):
        pass
    worker = subprocess.run(
        [command(), "worker", "--relay-only"], capture_output=True, text=True, env=env(REDIS_URL=redis_url), timeout=60
    )
    assert worker.returncode == 2 and f"PARTITIONS={PARTITIONS}" in worker.stderr, worker.stderr
    sync_redis.hset(KEYS.layout, "version", LAYOUT + 1)
    with pytest.raises(ConfigError, match="newer"):
        layout.check(sync_redis, KEYS)


@pytest.fixture
def stopped_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", executable=redis_executable())
    yield server
    server.stop()


def test_an_api_started_while_redis_is_down_checks_the_layout_before_its_first_request(
    stopped_redis: RedisServer, caplog: pytest.LogCaptureFixture
) -> None:
    settings = Settings(redis_url=stopped_redis.url, partitions=PARTITIONS, redis_timeout=0.5)
    with TestClient(create_app(settings)) as client:
        assert client.get("/v2/agents", headers={"x-api-key": "ask_x"}).status_code == 503
        stopped_redis.start()
        conn = redis.Redis.from_url(stopped_redis.url)
        conn.hset(KEYS.layout, mapping={"version": LAYOUT, "partitions": PARTITIONS + 1})
        conn.close()
        with caplog.at_level(logging.ERROR):
            for _ in range(2):  # refused for good, said once in the log
                assert client.get("/v2/agents", headers={"x-api-key": "ask_x"}).status_code == 503
        assert [r.getMessage() for r in caplog.records].count(
            f"this store was made with PARTITIONS={PARTITIONS + 1}; this process has PARTITIONS={PARTITIONS}."
            f" PARTITIONS is fixed for the life of a store: start every process with PARTITIONS={PARTITIONS + 1}"
        ) == 1
        assert client.get("/healthz").status_code == 200  # liveness never depends on the store
