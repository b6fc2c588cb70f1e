"""Redis going away: a fast 503 with Retry-After, never a hang, and recovery without a restart."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from tests.support.api import error
from tests.support.keys import KEYS
from tests.support.wait import eventually

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

URL = "/v2/agents/agt_a/sessions/ase_1"
# Generous bound: proves the request does not hang on a dead Redis; not a performance assertion.
NO_HANG = 5.0


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    # `always`: the setup's writes must be on disk before the SIGKILL. With `everysec`, Redis may hold
    # back its AOF write while a background fsync runs, and a kill then loses them (seen in a CI run).
    server = RedisServer(tmp_path, appendfsync="always").start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


@pytest.fixture
def setup(own_redis: RedisServer) -> Iterator[tuple[TestClient, dict[str, str]]]:
    _, key = Keyring(sync_client(own_redis.url), KEYS).create(Role.ADMIN)
    headers = {"x-api-key": key}
    with TestClient(create_app(Settings(redis_url=own_redis.url, redis_timeout=0.3))) as client:
        assert client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=headers).status_code == 201
        assert client.post("/v2/agents/agt_a/sessions", json={"key": "ase_1"}, headers=headers).status_code == 201
        yield client, headers


def timed_patch(client: TestClient, headers: dict[str, str], n: int) -> tuple[float, object]:
    start = time.monotonic()
    response = client.patch(URL, json={"description": f"v{n}"}, headers=headers)
    return time.monotonic() - start, response


def test_redis_killed_gives_fast_503_then_recovers(
    own_redis: RedisServer, setup: tuple[TestClient, dict[str, str]]
) -> None:
    client, headers = setup
    own_redis.kill()
    for n in range(3):
        elapsed, response = timed_patch(client, headers, n)
        assert elapsed < NO_HANG
        body = error(response, 503, "service_unavailable")
        assert response.headers["retry-after"] == "1"  # type: ignore[attr-defined]
        assert body["messages"] == ["the data store is unavailable; retry shortly"]
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200

    own_redis.start()  # same port, same AOF: the data is back
    eventually(lambda: client.get("/readyz").status_code == 200, "API did not recover after Redis came back", NO_HANG)
    response = client.patch(URL, json={"description": "after"}, headers=headers)
    assert response.status_code == 200 and response.json()["version"] == 2


def test_frozen_redis_times_out_into_503(own_redis: RedisServer, setup: tuple[TestClient, dict[str, str]]) -> None:
    client, headers = setup
    assert own_redis.process is not None
    own_redis.process.send_signal(signal.SIGSTOP)
    try:
        elapsed, response = timed_patch(client, headers, 1)
        assert elapsed < NO_HANG
        error(response, 503, "service_unavailable")
    finally:
        own_redis.process.send_signal(signal.SIGCONT)


def test_unexpected_error_is_a_500_without_internals(
    setup: tuple[TestClient, dict[str, str]], monkeypatch: pytest.MonkeyPatch
) -> None:
    client, headers = setup

    async def boom(*args: object) -> None:
        raise RuntimeError("secret internal detail")

    monkeypatch.setattr("agent_sessions.sessions.services.Services.get_session", boom)
    with TestClient(client.app, raise_server_exceptions=False) as fresh:
        response = fresh.get(URL, headers={**headers, "x-request-id": "trace-me"})
    body = error(response, 500, "internal_error")
    assert "secret" not in response.text and body["request_id"] == "trace-me"
