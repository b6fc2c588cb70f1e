"""SIGTERM: the API finishes the request in flight and refuses new ones; the worker finishes or returns
its in-flight messages. Nothing is lost."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time

import httpx
import pytest
import redis

from agent_sessions.auth import Role
from agent_sessions.redis.apikeys import Keyring
from agent_sessions.redis.server import free_port
from tests.e2e.helpers import command, env, wait_http
from tests.faults.helpers import (
    FAST_REDELIVERY,
    assert_report_equals_recount,
    start_worker,
    stop_group,
    stream_with_fault,
)
from tests.faults.test_worker_killed import api  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def test_api_finishes_in_flight_request_and_refuses_new_ones(redis_url: str) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(conn).create(Role.ADMIN)
    port = free_port()
    proc = subprocess.Popen(
        [command(), "serve", "--port", str(port)],
        env=env(REDIS_URL=redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    wait_http(f"http://127.0.0.1:{port}/healthz")
    headers = {"x-api-key": secret}
    httpx.post(f"http://127.0.0.1:{port}/v2/agents", json={"key": "agt_g", "name": "g"}, headers=headers)
    httpx.post(f"http://127.0.0.1:{port}/v2/agents/agt_g/sessions", json={"key": "ase_1"}, headers=headers)

    body = b'{"description": "finished after SIGTERM"}'
    sock = socket.create_connection(("127.0.0.1", port))
    sock.sendall(
        b"PATCH /v2/agents/agt_g/sessions/ase_1 HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"x-api-key: {secret}\r\nContent-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode()
        + body[:10]
    )
    time.sleep(0.3)  # the request is in flight: headers in, body half sent
    proc.send_signal(signal.SIGTERM)
    time.sleep(0.5)
    with pytest.raises(OSError):  # no new connections
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    sock.sendall(body[10:])
    response = b""
    while chunk := sock.recv(65536):
        response += chunk
    sock.close()
    assert response.startswith(b"HTTP/1.1 200"), response[:200]
    assert proc.wait(20) in (0, -signal.SIGTERM)
    assert conn.hget("as:session:agt_g:ase_1", "description") == "finished after SIGTERM"


def test_worker_sigterm_mid_stream_loses_nothing(api: tuple[str, dict[str, str]], redis_url: str) -> None:  # noqa: F811
    base, headers = api
    settings = env(REDIS_URL=redis_url, **FAST_REDELIVERY)
    first = start_worker(settings)
    second = None
    try:
        stream_with_fault(base, headers, sessions=5, patches=300, fault=lambda: os.killpg(first.pid, signal.SIGTERM))
        assert first.wait(60) == 0  # a clean stop, within the shutdown timeout
        second = start_worker(settings)
        assert_report_equals_recount(base, headers, redis_url)
    finally:
        stop_group(first)
        stop_group(second)
