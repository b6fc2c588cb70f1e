"""REDIS_MIN_REPLICA_ACKS: a write is answered only once replicas have it, so a failover right after
the answer loses nothing; without it, the same failover loses an answered write (the control case).

A real primary and a real replica (two ``redis-server`` processes) with the replication link through
``HoldingLink``, which makes the replica fall behind on demand; a failover is the primary SIGKILLed,
what it had sent but the replica had not received thrown away, and the replica promoted.
"""

from __future__ import annotations

import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from prometheus_client import REGISTRY
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.errors import ReplicasBehind
from agent_sessions.events.outbox import Outbox
from agent_sessions.events.relay import Relay
from agent_sessions.redis.acks import ReplicaAcks
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.scripts import SyncScript
from agent_sessions.redis.server import RedisServer
from agent_sessions.sessions.lua import AGENT_UPDATE
from agent_sessions.sessions.purge import Purger
from agent_sessions.web.app import create_app
from agent_sessions.webhooks.store import Bounds, Fanout
from tests.support.api import SEED_AGENT, SESSIONS, URL, error
from tests.support.keys import KEYS
from tests.support.processes import command, env
from tests.support.proxy import HoldingLink
from tests.support.stub import stub_broker
from tests.support.wait import eventually

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

TIMEOUT = 0.5  # REDIS_TIMEOUT: a write waits up to half of it (250 ms) for its replica


@dataclass
class Pair:
    primary: RedisServer
    replica: RedisServer
    link: HoldingLink

    def in_sync(self) -> None:
        """Wait until the replica has every write the primary made."""
        conn = redis.Redis.from_url(self.primary.url)
        try:
            assert conn.execute_command("WAIT", 1, 5000) == 1  # type: ignore[no-untyped-call]
        finally:
            conn.close()

    def fail_over(self) -> redis.Redis:
        """The primary dies; what the replica had not received is gone; the replica is promoted."""
        self.primary.kill()
        self.link.drop()
        promoted = redis.Redis.from_url(self.replica.url, decode_responses=True)
        promoted.execute_command("REPLICAOF", "NO", "ONE")  # type: ignore[no-untyped-call]
        return promoted


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[Pair]:
    primary = RedisServer(tmp_path / "primary").start()
    link = HoldingLink(primary.port)
    replica = RedisServer(tmp_path / "replica", extra_args=("--replicaof", "127.0.0.1", str(link.port)))
    try:
        replica.start()
        conn = redis.Redis.from_url(replica.url, decode_responses=True)
        deadline = time.monotonic() + 10
        while conn.info("replication").get("master_link_status") != "up":
            assert time.monotonic() < deadline, "the replica did not connect"
            time.sleep(0.05)
        conn.close()
        yield Pair(primary, replica, link)
    finally:
        link.release()
        replica.stop()
        primary.stop()


def app_on(pair: Pair, acks: int) -> TestClient:
    settings = Settings(redis_url=pair.primary.url, redis_min_replica_acks=acks, redis_timeout=TIMEOUT)
    return TestClient(create_app(settings))


def seeded(client: TestClient, pair: Pair) -> dict[str, str]:
    """An admin key, the agent and its session, on the replica too."""
    secret = Keyring(sync_client(pair.primary.url), KEYS).create(Role.ADMIN)[1]
    headers = {"x-api-key": secret}
    assert client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=headers).status_code == 201
    assert client.post(SESSIONS, json={"key": URL.rsplit("/", 1)[1]}, headers=headers).status_code == 201
    pair.in_sync()
    return headers


def session_on(conn: redis.Redis) -> dict[str, str]:
    return cast(dict[str, str], conn.hgetall(KEYS.session(SEED_AGENT, URL.rsplit("/", 1)[1])))


def test_without_replica_acks_a_failover_loses_an_answered_write(pair: Pair) -> None:
    """The control: the setup below really can lose a write, so the next test's survival means something."""
    with app_on(pair, acks=0) as client:
        headers = seeded(client, pair)
        pair.link.hold()
        answer = client.patch(URL, json={"description": "answered"}, headers=headers)
        assert answer.status_code == 200 and answer.json()["version"] == 2
    promoted = pair.fail_over()
    assert session_on(promoted)["version"] == "1"  # answered, then lost
    promoted.close()


def test_with_replica_acks_an_answered_write_survives_a_failover(pair: Pair) -> None:
    with app_on(pair, acks=1) as client:
        headers = seeded(client, pair)
        pair.link.hold()
        answers: list[Any] = []
        patch = threading.Thread(
            target=lambda: answers.append(client.patch(URL, json={"description": "kept"}, headers=headers))
        )
        patch.start()
        patch.join(0.15)
        assert not answers, "answered before the replica had the write"
        pair.link.release()
        patch.join(5)
        assert answers[0].status_code == 200, answers[0].text
        assert answers[0].json()["version"] == 2
        pair.link.hold()  # nothing more reaches the replica: whatever it has, it had at the answer
    promoted = pair.fail_over()
    stored = session_on(promoted)
    assert (stored["version"], stored["description"]) == ("2", "kept")
    promoted.close()


def test_a_write_not_confirmed_in_time_is_503_and_its_retry_with_the_same_idempotency_key_is_the_same(
    pair: Pair,
) -> None:
    with app_on(pair, acks=1) as client:
        headers = {**seeded(client, pair), "idempotency-key": "retry-me"}
        pair.link.hold()
        missed = REGISTRY.get_sample_value("agent_sessions_replica_acks_missed_total") or 0.0
        started = time.monotonic()
        body = error(client.patch(URL, json={"description": "once"}, headers=headers), 503, "service_unavailable")
        assert REGISTRY.get_sample_value("agent_sessions_replica_acks_missed_total") == missed + 1
        assert time.monotonic() - started >= TIMEOUT / 2 * 0.9
        assert "replicas" in body["messages"][0] and "may have applied" in body["messages"][0]
        primary = redis.Redis.from_url(pair.primary.url, decode_responses=True)
        assert session_on(primary)["version"] == "2"  # it applied on the primary
        pair.link.release()
        retry = client.patch(URL, json={"description": "once"}, headers=headers)
        assert retry.status_code == 200, retry.text
        assert retry.json()["version"] == 2 and retry.headers["idempotent-replayed"] == "true"
        assert session_on(primary)["version"] == "2"
        primary.close()


def test_every_writer_waits_for_its_replicas_the_workers_the_cli_and_the_rules(pair: Pair) -> None:
    acks = ReplicaAcks(1, 200)
    conn = sync_client(pair.primary.url, acks=acks)
    keyring = Keyring(conn, KEYS)
    with app_on(pair, acks=1) as client:
        headers = seeded(client, pair)
        pair.link.hold()
        # A worker's script (an actor acknowledges its message only after this returns).
        update = SyncScript(conn, AGENT_UPDATE)
        with pytest.raises(ReplicasBehind):
            update({"agent": KEYS.agent(SEED_AGENT)}, {}, more_args=["name", "b"])
        # The CLI: a key revoked must stay revoked through a failover.
        with pytest.raises(ReplicasBehind):
            keyring.create(Role.EDITOR, (SEED_AGENT,))
        cli = subprocess.run(
            [command(), "keys", "create", "--role", "admin"],
            capture_output=True,
            text=True,
            env=env(REDIS_URL=pair.primary.url, REDIS_MIN_REPLICA_ACKS="1", REDIS_TIMEOUT=str(TIMEOUT)),
            timeout=60,
        )
        assert cli.returncode == 3 and "may have applied" in cli.stderr, cli.stderr
        # The API's own transaction (escalation rules are written without a script).
        rules = {"rules": [{"name": "urgent", "path": "metadata.priority", "becomes": ["urgent"]}]}
        error(
            client.put(f"/v2/agents/{SEED_AGENT}/escalation_rules", json=rules, headers=headers),
            503,
            "service_unavailable",
        )
        pair.link.release()
        assert update({"agent": KEYS.agent(SEED_AGENT)}, {}, more_args=["name", "c"])[0] == "ok"
    conn.close()


def test_too_few_replicas_for_the_setting_is_said_at_start(pair: Pair, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING), app_on(pair, acks=2):
        pass
    assert "REDIS_MIN_REPLICA_ACKS is 2 but the primary has 1 replica(s) connected" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING), app_on(pair, acks=1):
        pass
    assert "REDIS_MIN_REPLICA_ACKS" not in caplog.text


def test_the_relay_waits_out_a_lagging_replica_and_then_relays_everything(pair: Pair) -> None:
    """The relay queues webhook deliveries before it acknowledges an event, and those writes wait for
    the replica: while it lags, the relay retries (it must not stop the worker); once it catches up,
    every event is relayed and queued. It retries the batch it had read itself: no other relay would
    take it before the claim timeout (an hour here)."""
    settings = Settings(redis_url=pair.primary.url, webhook_allow_private_networks=True, redis_timeout=TIMEOUT)
    with TestClient(create_app(settings)) as client:  # the API does not wait here: only the relay does
        headers = seeded(client, pair)
        hook = client.post(
            "/v2/webhook_endpoints",
            json={"url": "http://127.0.0.1:9/hook", "event_types": ["session.updated"]},
            headers=headers,
        ).json()
        pair.in_sync()
        conn = sync_client(pair.primary.url, acks=ReplicaAcks(1, 100))
        relay = Relay(
            Outbox(conn, KEYS),
            stub_broker,
            Fanout(conn, KEYS, Bounds.of(settings)),
            name="relay-t",
            claim_idle_ms=3_600_000,
            block_ms=10,
        )
        relay.ensure_group()
        stop = threading.Event()
        thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
        pair.link.hold()
        for n in range(3):
            assert client.patch(URL, json={"description": f"d{n}"}, headers=headers).status_code == 200
        thread.start()
        time.sleep(1.5)  # several relay attempts, each refused for want of the replica
        assert thread.is_alive(), "the relay stopped"
        pair.link.release()
        eventually(lambda: Outbox(conn, KEYS).backlog() == 0)
        stop.set()
        thread.join(5)
        rows = client.get(f"/v2/webhook_endpoints/{hook['id']}/deliveries", headers=headers).json()
        assert len(rows["deliveries"]) == 3
        stub_broker.flush_all()
        conn.close()


def test_the_background_steps_wait_out_a_lagging_replica(pair: Pair) -> None:
    """The purge (like the expiry sweep and the log's retention) runs in steps whose writes wait for
    the replica: while it lags, a step fails and is tried again, and the loop goes on."""
    with app_on(pair, acks=0) as client:
        headers = seeded(client, pair)
        assert client.delete(f"/v2/agents/{SEED_AGENT}", headers=headers).status_code == 204
    pair.in_sync()
    conn = sync_client(pair.primary.url, acks=ReplicaAcks(1, 100))
    purger = Purger(conn, KEYS, 100, dimensions=Settings().report_dimensions)
    stop = threading.Event()
    thread = threading.Thread(target=purger.run, args=(stop, 0.05), daemon=True)
    pair.link.hold()
    thread.start()
    time.sleep(1)
    assert thread.is_alive(), "the purge loop stopped"
    pair.link.release()
    eventually(lambda: not conn.exists(KEYS.session(SEED_AGENT, URL.rsplit("/", 1)[1])))
    stop.set()
    thread.join(5)
    conn.close()
