"""Hardening through the app and a real Redis: input edges, replayed errors, numbers compared by value,
a full Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from tests.support.api import SEED_AGENT, SEED_SESSION, error
from tests.support.cluster import valkey_executable
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
LISTS = ("/v2/agents", f"/v2/agents/{SEED_AGENT}/sessions", f"{URL}/history")


@pytest.mark.parametrize("limit", ["²", "¹", "①", "٣", "1.0", "-1", " 1"])
def test_query_integers_are_ascii_digits_only(
    client: TestClient, admin: dict[str, str], seeded: Any, limit: str
) -> None:
    for path in LISTS:
        body = error(client.get(path, params={"limit": limit}, headers=admin), 400, "invalid_request")
        assert "limit" in body["field_errors"]


def test_content_encoding_other_than_identity_is_415(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    gzip = {**admin, "content-type": "application/json", "content-encoding": "gzip"}
    error(client.patch(URL, content=b'{"description": "x"}', headers=gzip), 415, "unsupported_media_type")
    assert client.get(URL, headers=admin).json()["version"] == 1
    identity = {**gzip, "content-encoding": "identity"}
    assert client.patch(URL, content=b'{"description": "x"}', headers=identity).status_code == 200


@pytest.mark.parametrize(
    ("sent", "echoed"),
    [
        ("trace-1.a:b_C", True),
        ("x" * 128, True),
        ("x" * 129, False),
        ("has space", False),
        ('quote"', False),
        ("tab\there", False),
        ("req_0123456789abcdef", False),  # the server's own namespace
    ],
)
def test_client_request_ids_are_echoed_only_when_well_formed(client: TestClient, sent: str, echoed: bool) -> None:
    rid = client.get("/healthz", headers={"x-request-id": sent}).headers["x-request-id"]
    assert (rid == sent) is echoed
    if not echoed:
        assert rid.startswith("req_")


def test_replayed_errors_say_they_are_replays(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    headers = {**admin, "idempotency-key": "gone"}
    first = client.patch(f"/v2/agents/{SEED_AGENT}/sessions/ase_nobody", json={"description": "x"}, headers=headers)
    error(first, 404, "session_not_found")
    assert "idempotent-replayed" not in first.headers
    again = client.patch(f"/v2/agents/{SEED_AGENT}/sessions/ase_nobody", json={"description": "x"}, headers=headers)
    error(again, 404, "session_not_found")
    assert again.headers["idempotent-replayed"] == "true"

    stale = {**admin, "idempotency-key": "stale", "if-match": '"9"'}
    error(client.patch(URL, json={"description": "y"}, headers=stale), 412, "precondition_failed")
    replay = client.patch(URL, json={"description": "y"}, headers=stale)
    error(replay, 412, "precondition_failed")
    assert replay.headers["idempotent-replayed"] == "true"


def test_numerically_equal_metadata_is_no_change(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    def patch(raw: bytes) -> dict[str, Any]:
        response = client.patch(URL, content=raw, headers={**admin, "content-type": "application/json"})
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body

    assert patch(b'{"metadata": {"n": 1, "deep": {"x": [2, 3.5]}}}')["version"] == 2
    same = patch(b'{"metadata": {"n": 1.0, "deep": {"x": [2.0, 3.5]}}}')
    assert same["version"] == 2 and same["metadata"] == {"n": 1, "deep": {"x": [2, 3.5]}}
    assert patch(b'{"metadata": {"n": 1e0, "deep": {"x": [2, 3.5]}}}')["version"] == 2
    assert patch(b'{"metadata": {"n": 1.5, "deep": {"x": [2, 3.5]}}}')["version"] == 3
    stored = client.get(URL, headers=admin).json()["metadata"]
    assert stored == {"n": 1.5, "deep": {"x": [2, 3.5]}}


# -- Redis full -------------------------------------------------------------------------------------


@pytest.fixture(params=["redis 6.2", "valkey 9"])
def full_redis(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RedisServer]:
    """Both generations: Redis 6.2 reports a full store inside a script error's text, Redis 7+ and
    Valkey as an OOM error of its own (which redis-py raises as OutOfMemoryError, without the words)."""
    executable = valkey_executable() if request.param == "valkey 9" else None
    server = RedisServer(tmp_path, executable=executable).start()
    yield server
    server.stop()


def test_a_full_redis_refuses_writes_with_507_and_keeps_serving_reads(full_redis: RedisServer) -> None:
    conn = sync_client(full_redis.url)
    assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    _, secret = Keyring(conn, KEYS).create(Role.ADMIN)
    headers = {"x-api-key": secret}
    with TestClient(create_app(Settings(redis_url=full_redis.url))) as client:
        assert client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=headers).status_code == 201
        sessions = f"/v2/agents/{SEED_AGENT}/sessions"
        for key in (SEED_SESSION, "ase_2"):
            assert client.post(sessions, json={"key": key}, headers=headers).status_code == 201
        before = client.get(URL, headers=headers).json()
        conn.config_set("maxmemory", 1)  # anything above: full
        try:
            for response in (
                client.patch(URL, json={"description": "x"}, headers=headers),
                client.patch(URL, json={"description": "x"}, headers={**headers, "idempotency-key": "k"}),
                client.post(sessions, json={"key": "ase_3"}, headers=headers),
                client.patch(f"/v2/agents/{SEED_AGENT}", json={"name": "b"}, headers=headers),
            ):
                body = error(response, 507, "insufficient_storage")
                assert "full" in body["messages"][0]
            assert client.get(URL, headers=headers).json() == before  # nothing changed; reads work
            assert client.get(sessions, headers=headers).json()["metadata"]["total_count"] == 2
            assert client.get(f"{URL}/history", headers=headers).status_code == 200
            # Deleting is how space is made: Redis lets deletions through when full, and so do we.
            assert client.delete(f"{sessions}/ase_2", headers=headers).status_code == 204
        finally:
            conn.config_set("maxmemory", 0)
        assert client.patch(URL, json={"description": "x"}, headers=headers).json()["version"] == 2


def test_the_embedded_redis_never_evicts(redis_url: str) -> None:
    assert redis.Redis.from_url(redis_url).config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"


# -- bounded state per key --------------------------------------------------------------------------


def used_memory(conn: redis.Redis) -> int:
    """What the data takes: Redis's memory less its overhead (client and AOF buffers among it). The suite
    shares one Redis, whose AOF may be rewritten in the background during a test; while it is, every write
    is also kept in a rewrite buffer (11.8 MB during 2,000 PATCHes once), which is not what a key holds.
    On a cluster, the sum over its primaries (the cluster client asks one node for INFO unless told)."""
    if isinstance(conn, redis.RedisCluster):
        per_node: dict[str, Any] = conn.info("memory", target_nodes=redis.RedisCluster.PRIMARIES)
        return sum(int(info["used_memory_dataset"]) for info in per_node.values())
    return int(conn.info("memory")["used_memory_dataset"])


def test_idempotency_records_share_the_answer_and_are_bounded_per_key(
    redis_url: str, sync_redis: redis.Redis, admin: dict[str, str]
) -> None:
    settings = Settings(redis_url=redis_url, idempotency_max_per_key=1500)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=admin).status_code == 201
        big = {"metadata": {f"k{i}": "v" * 100 for i in range(60)}}  # a session of about 8 KiB
        sessions = f"/v2/agents/{SEED_AGENT}/sessions"
        assert client.post(sessions, json={"key": SEED_SESSION, **big}, headers=admin).status_code == 201
        before = used_memory(sync_redis)
        for n in range(2000):
            response = client.patch(URL, json={}, headers={**admin, "idempotency-key": f"k{n}"})
            assert response.status_code == 200
        grown = used_memory(sync_redis) - before
        print(f"2000 idempotent PATCH {{}} on an 8 KiB session: {grown} bytes")
        # Each record is its own few hundred bytes; the 8 KiB answer is kept once (one version).
        assert grown < 2_000_000, grown
        records = list(sync_redis.scan_iter("as:idem:{*}:kid_*", count=1000))
        assert len(records) == 1500  # the oldest 500 were forgotten
        assert len(list(sync_redis.scan_iter("as:idem:snap:*"))) == 1

        replay = client.patch(URL, json={}, headers={**admin, "idempotency-key": "k1999"})
        assert replay.headers["idempotent-replayed"] == "true" and replay.json()["version"] == 1
        forgotten = client.patch(URL, json={}, headers={**admin, "idempotency-key": "k0"})
        assert "idempotent-replayed" not in forgotten.headers  # applied anew (a no-op here)


def test_idempotent_replays_of_changes_return_the_answer_of_their_version(
    client: TestClient, admin: dict[str, str], seeded: Any
) -> None:
    first = client.patch(URL, json={"description": "a"}, headers={**admin, "idempotency-key": "one"})
    client.patch(URL, json={"description": "b"}, headers=admin)
    replay = client.patch(URL, json={"description": "a"}, headers={**admin, "idempotency-key": "one"})
    assert replay.json() == first.json() and replay.json()["version"] == 2
    created = client.post(
        f"/v2/agents/{SEED_AGENT}/sessions", json={"name": "gen"}, headers={**admin, "idempotency-key": "c"}
    )
    again = client.post(
        f"/v2/agents/{SEED_AGENT}/sessions", json={"name": "gen"}, headers={**admin, "idempotency-key": "c"}
    )
    assert again.status_code == 201 and again.json() == created.json()
    assert again.headers["idempotent-replayed"] == "true"


def test_history_is_bounded_in_bytes_per_session(
    redis_url: str, sync_redis: redis.Redis, admin: dict[str, str]
) -> None:
    settings = Settings(redis_url=redis_url, history_max_bytes=64 * 1024)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=admin).status_code == 201
        sessions = f"/v2/agents/{SEED_AGENT}/sessions"
        assert client.post(sessions, json={"key": SEED_SESSION}, headers=admin).status_code == 201
        for n in range(60):  # ~16 KiB descriptions: each entry holds the old and the new one
            body = {"description": f"{n:05d}" + "d" * 16_000}
            assert client.patch(URL, json=body, headers=admin).status_code == 200
        history_key = KEYS.history(SEED_AGENT, SEED_SESSION)
        entries = cast(list[str], sync_redis.lrange(history_key, 0, -1))
        assert sum(len(e.encode()) for e in entries) <= 64 * 1024
        assert int(sync_redis.get(history_key + ":bytes") or 0) == sum(len(e.encode()) for e in entries)
        page = client.get(f"{URL}/history", params={"limit": 100}, headers=admin).json()
        assert page["history"][0]["version"] == 61 and len(page["history"]) == len(entries) >= 1
        assert [e["version"] for e in page["history"]] == list(range(61, 61 - len(entries), -1))


def test_forgotten_idempotency_records_take_their_answers_with_them(
    redis_url: str, sync_redis: redis.Redis, admin: dict[str, str]
) -> None:
    """Real changes each make a new answer (a new version): past IDEMPOTENCY_MAX_PER_KEY records, the
    snapshots of the forgotten records go too, so the cap bounds answers as well as records."""
    settings = Settings(redis_url=redis_url, idempotency_max_per_key=5)
    with TestClient(create_app(settings)) as client:
        assert client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=admin).status_code == 201
        sessions = f"/v2/agents/{SEED_AGENT}/sessions"
        assert client.post(sessions, json={"key": SEED_SESSION}, headers=admin).status_code == 201
        for n in range(30):
            body = {"description": f"change {n}"}
            assert client.patch(URL, json=body, headers={**admin, "idempotency-key": f"c{n}"}).status_code == 200
        assert len(list(sync_redis.scan_iter("as:idem:{*}:kid_*"))) == 5
        assert len(list(sync_redis.scan_iter("as:idem:snap:*"))) == 5
        # the kept records still replay their own answers exactly
        replay = client.patch(URL, json={"description": "change 29"}, headers={**admin, "idempotency-key": "c29"})
        assert replay.headers["idempotent-replayed"] == "true" and replay.json()["description"] == "change 29"
        # a no-op shares the current answer: forgetting its record leaves the answer to the others
        for n in range(5):
            client.patch(URL, json={}, headers={**admin, "idempotency-key": f"noop{n}"})
        assert len(list(sync_redis.scan_iter("as:idem:snap:*"))) == 1
        again = client.patch(URL, json={}, headers={**admin, "idempotency-key": "noop4"})
        assert again.headers["idempotent-replayed"] == "true" and again.json()["version"] == 31
