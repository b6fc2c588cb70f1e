"""SIGTERM: the API finishes the request in flight and refuses new ones; the worker finishes or returns
its in-flight messages. Nothing is lost."""

from __future__ import annotations

import os
import signal
import socket
from pathlib import Path

import httpx
import pytest
import redis

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.redis.server import free_port
from tests.faults.helpers import AGENT, FAST_REDELIVERY, stream_with_fault
from tests.support.keys import KEYS
from tests.support.processes import command, env, running, wait_http, working
from tests.support.recount import assert_report_equals_recount
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e


def refuses_connections(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return True
    return False


def test_api_finishes_in_flight_request_and_refuses_new_ones(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(conn, KEYS).create(Role.ADMIN)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with running([command(), "serve", "--port", str(port)], env(REDIS_URL=redis_url)) as proc:
        wait_http(f"{base}/healthz", proc)
        headers = {"x-api-key": secret}
        httpx.post(f"{base}/v2/agents", json={"key": "agt_g", "name": "g"}, headers=headers)
        httpx.post(f"{base}/v2/agents/agt_g/sessions", json={"key": "ase_1"}, headers=headers)

        body = b'{"description": "finished after SIGTERM"}'
        with socket.create_connection(("127.0.0.1", port)) as sock:
            sock.settimeout(20)
            sock.sendall(
                b"PATCH /v2/agents/agt_g/sessions/ase_1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                + f"x-api-key: {secret}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n".encode()
                + b"Expect: 100-continue\r\n\r\n"
            )
            # The server answers 100 Continue when the app starts reading the body: the request is
            # in the app, in flight, when the SIGTERM comes.
            assert sock.recv(65536).startswith(b"HTTP/1.1 100 Continue")
            proc.send_signal(signal.SIGTERM)
            eventually(lambda: refuses_connections(port), "new connections still accepted after SIGTERM")
            sock.sendall(body)
            response = b""
            while chunk := sock.recv(65536):
                response += chunk
        assert response.startswith(b"HTTP/1.1 200"), response[:200]
        assert proc.wait(20) in (0, -signal.SIGTERM)
    assert conn.hget(KEYS.session("agt_g", "ase_1"), "description") == "finished after SIGTERM"


def test_worker_sigterm_mid_stream_loses_nothing(
    api: tuple[str, dict[str, str]], redis_url: str, tmp_path: Path
) -> None:
    base, headers = api
    settings = env(REDIS_URL=redis_url, **FAST_REDELIVERY)
    alive = tmp_path / "alive"
    with working(settings, "--health-file", str(alive)) as first:
        eventually(alive.exists, "the worker running", timeout=60)  # the SIGTERM lands on a running worker
        stream_with_fault(base, headers, sessions=5, patches=300, fault=lambda: os.killpg(first.pid, signal.SIGTERM))
        assert first.wait(60) == 0  # a clean stop, within the shutdown timeout
    with working(settings):
        assert_report_equals_recount(base, headers, redis_url, AGENT)
