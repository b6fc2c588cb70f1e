"""The whole `agent-sessions worker` (relay and Dramatiq processes) killed with SIGKILL mid-stream:
after a new worker starts, every event is processed and the report equals a recount."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from agent_sessions.auth import Keyring, Role
from agent_sessions.redis_server import free_port
from tests.e2e.helpers import command, env, stop, wait_http
from tests.e2e.test_pipeline_processes import AGENT, broker_url, recount  # noqa: F401  (fixture)

pytestmark = pytest.mark.e2e


def start_worker(settings: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own process group, so that SIGKILL takes the relay and the Dramatiq children at once.
    return subprocess.Popen(
        [command(), "worker", "--threads", "4"],
        env=settings,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@pytest.fixture
def api(redis_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(conn).create(Role.ADMIN, rate=1e6, burst=10**6)
    port = free_port()
    proc = subprocess.Popen(
        [command(), "serve", "--port", str(port)],
        env=env(REDIS_URL=redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}", {"x-api-key": secret}
    finally:
        assert stop(proc, signal.SIGTERM)


def test_worker_killed_mid_stream_loses_nothing(
    api: tuple[str, dict[str, str]],
    redis_url: str,
    broker_url: str,  # noqa: F811
) -> None:
    base, headers = api
    settings = env(
        REDIS_URL=redis_url,
        BROKER_URL=broker_url,
        RELAY_CLAIM_IDLE_MS="1000",
        REDIS_BROKER_HEARTBEAT_MS="2000",
        REDIS_BROKER_MAINTENANCE_CHANCE="100000",
    )
    sessions = f"{base}/v2/agents/{AGENT}/sessions"
    httpx.post(f"{base}/v2/agents", json={"key": AGENT, "name": "faults"}, headers=headers)
    for i in range(10):
        httpx.post(sessions, json={"key": f"ase_{i}"}, headers=headers)
    first = start_worker(settings)
    second = None
    try:

        async def stream() -> None:
            async with httpx.AsyncClient(headers=headers, timeout=10) as client:
                for n in range(600):
                    body = {"metadata": {"priority": ["low", "high", "urgent"][n % 3], "n": n}}
                    r = await client.patch(f"{sessions}/ase_{n % 10}", json=body)
                    assert r.status_code == 200
                    if n == 300:
                        os.killpg(first.pid, signal.SIGKILL)  # mid-stream, no warning
                        first.wait()

        asyncio.run(stream())
        second = start_worker(settings)
        conn = redis.Redis.from_url(redis_url, decode_responses=True)
        expected = recount(conn)
        deadline = time.monotonic() + 120
        while True:
            report = httpx.get(f"{base}/v2/agents/{AGENT}/report", headers=headers).json()
            if report["updates"] == expected["updates"] or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        assert {k: report[k] for k in expected} == expected
        assert conn.xlen("as:outbox") == 0
    finally:
        if first.poll() is None:
            os.killpg(first.pid, signal.SIGKILL)
        if second is not None:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(60)
