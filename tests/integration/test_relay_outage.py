"""A Redis pause in the middle of a relay step strands nothing: the events it read come first once
Redis answers again, in each session's version order, within about a second (not after
RELAY_CLAIM_IDLE_MS, when a newer event of the session would already have gone ahead)."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.events.outbox import Outbox
from agent_sessions.events.relay import Relay
from agent_sessions.events.store import LogWriter
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from tests.support.keys import KEYS
from tests.support.stub import stub_broker
from tests.support.wait import eventually

URL = "/v2/agents/agt_a/sessions/ase_1"
LINGER_MS = 1000


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path).start()
    yield server
    if server.process is not None and server.process.poll() is None:
        server.process.send_signal(signal.SIGCONT)
    server.stop()


def logged_versions(conn: Any) -> list[tuple[int, float]]:
    """(version, when it was appended: the log entry id's ms) of ase_1's events in the log, in log order."""
    return [
        (int(f["version"]), int(i.split("-")[0]) / 1000)
        for i, f in conn.xrange(KEYS.events)
        if f["session_key"] == "ase_1"
    ]


@pytest.mark.parametrize("pause_at", [0.3, 1.1])  # lingering over the first read; during the second read
def test_a_pause_while_the_relay_lingers_strands_nothing(own_redis: RedisServer, pause_at: float) -> None:
    conn = sync_client(own_redis.url)
    _, key = Keyring(conn, KEYS).create(Role.ADMIN)
    headers = {"x-api-key": key}
    relay_client = sync_client(own_redis.url, timeout=0.5)
    relay = Relay(
        Outbox(relay_client, KEYS), stub_broker, name="relay-1", claim_idle_ms=30_000, block_ms=200,
        linger_ms=LINGER_MS,
        log=LogWriter(relay_client, KEYS),
    )  # fmt: skip
    relay.ensure_group()
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), daemon=True)
    with TestClient(create_app(Settings(redis_url=own_redis.url, redis_timeout=0.5))) as client:
        assert client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=headers).status_code == 201
        assert client.post(URL.rsplit("/", 1)[0], json={"key": "ase_1"}, headers=headers).status_code == 201
        thread.start()
        try:
            eventually(lambda: [v for v, _ in logged_versions(conn)] == [1], "the create was not relayed")
            time.sleep(0.3)  # the relay waits for news again
            assert client.patch(URL, json={"description": "v2"}, headers=headers).status_code == 200
            time.sleep(pause_at)
            own_redis.process.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
            time.sleep(3)
            own_redis.process.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
            resumed = time.time()
            assert client.patch(URL, json={"description": "v3"}, headers=headers).status_code == 200
            eventually(lambda: len(logged_versions(conn)) == 3, "not every event reached the log", timeout=10)
        finally:
            stop.set()
            thread.join(10)
    versions = logged_versions(conn)
    assert [v for v, _ in versions] == [1, 2, 3]
    assert versions[1][1] - resumed < 1 + LINGER_MS / 1000  # v2 within about a second (and a linger) of Redis
    relay_client.close()
    conn.close()
