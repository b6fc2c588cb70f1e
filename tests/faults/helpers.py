"""Shared steps of the worker fault tests: a stream of PATCHes with a fault in the middle, then the
end-to-end proof that nothing was lost (the report equals a recount of the stored sessions)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import time
from collections.abc import Callable

import httpx
import redis

from tests.e2e.helpers import command
from tests.e2e.test_pipeline_processes import AGENT, recount

FAST_REDELIVERY = {
    "RELAY_CLAIM_IDLE_MS": "1000",
    "REDIS_BROKER_HEARTBEAT_MS": "2000",
    "REDIS_BROKER_MAINTENANCE_CHANCE": "100000",
}


def start_worker(settings: dict[str, str]) -> subprocess.Popen[bytes]:
    # Its own process group, so that a signal reaches the relay and the Dramatiq children at once.
    return subprocess.Popen(
        [command(), "worker", "--threads", "4"],
        env=settings,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def stop_group(proc: subprocess.Popen[bytes] | None) -> None:
    if proc is not None and proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def stream_with_fault(
    base: str, headers: dict[str, str], sessions: int, patches: int, fault: Callable[[], None]
) -> None:
    """Create the agent and sessions, then PATCH them in turn, calling ``fault`` halfway."""
    url = f"{base}/v2/agents/{AGENT}/sessions"
    httpx.post(f"{base}/v2/agents", json={"key": AGENT, "name": "faults"}, headers=headers)
    for i in range(sessions):
        httpx.post(url, json={"key": f"ase_{i}"}, headers=headers)

    async def stream() -> None:
        async with httpx.AsyncClient(headers=headers, timeout=10) as client:
            for n in range(patches):
                body = {"metadata": {"priority": ["low", "high", "urgent"][n % 3], "n": n}}
                response = await client.patch(f"{url}/ase_{n % sessions}", json=body)
                assert response.status_code == 200
                if n == patches // 2:
                    fault()

    asyncio.run(stream())


def assert_report_equals_recount(base: str, headers: dict[str, str], redis_url: str, timeout: float = 90) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    expected = recount(conn)
    deadline = time.monotonic() + timeout
    while True:
        report = httpx.get(f"{base}/v2/agents/{AGENT}/report", headers=headers).json()
        # Both: events a dead relay enqueued but never acknowledged are counted already, yet stay in
        # the outbox until a live relay reclaims them (RELAY_CLAIM_IDLE_MS) — and count nothing twice.
        drained = conn.xlen("as:outbox") == 0
        if (report["updates"] == expected["updates"] and drained) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert {k: report[k] for k in expected} == expected
    assert conn.xlen("as:outbox") == 0
