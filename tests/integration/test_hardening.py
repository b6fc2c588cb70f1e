"""Hardening through the app and a real Redis: input edges, replayed errors, numbers compared by value,
a full Redis."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.auth import Keyring, Role
from agent_sessions.config import Settings
from agent_sessions.redis_client import sync_client
from agent_sessions.redis_server import RedisServer
from agent_sessions.web.app import create_app
from tests.conftest import SEED_AGENT, SEED_SESSION
from tests.integration.test_api_sessions import error

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


@pytest.fixture
def full_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    server.stop()


def test_a_full_redis_refuses_writes_with_507_and_keeps_serving_reads(full_redis: RedisServer) -> None:
    conn = sync_client(full_redis.url)
    assert conn.config_get("maxmemory-policy")["maxmemory-policy"] == "noeviction"
    _, secret = Keyring(conn).create(Role.ADMIN)
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
