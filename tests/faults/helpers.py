"""Shared steps of the worker fault tests: a stream of PATCHes with a fault in the middle, then the
end-to-end proof that nothing was lost (the report equals a recount of the stored sessions)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import httpx
import redis

from tests.support import stream
from tests.support.api import DIMS
from tests.support.recount import recount, recount_escalations
from tests.support.wait import eventually

AGENT = "agt_faults"
FAST_REDELIVERY = {
    "RELAY_CLAIM_IDLE_MS": "1000",
    "REDIS_BROKER_HEARTBEAT_MS": "2000",
    "REDIS_BROKER_MAINTENANCE_CHANCE": "100000",
}


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
    """The report equals the recount of the stored sessions, escalations included (each counted once),
    and the outbox is empty."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    expected = recount(conn, AGENT, DIMS) | {"escalations": {"total": recount_escalations(conn, AGENT)}}
    assert expected["escalations"]["total"] > 0

    def report() -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{base}/v2/agents/{AGENT}/report", headers=headers).json()
        return body

    def caught_up() -> bool:
        counted = report()
        return all(counted[k] == expected[k] for k in ("updates", "escalations"))

    # Both: events a dead relay enqueued but never acknowledged are counted already, yet stay in the
    # outbox until a live relay reclaims them (RELAY_CLAIM_IDLE_MS) — and count nothing twice. The
    # escalations too: a worker records each as an event of its own, into the outbox, so the outbox is
    # empty for good only once every escalation is counted.
    eventually(
        lambda: caught_up() and stream.outbox_length(conn) == 0,
        "the report did not catch up with the stored sessions",
        timeout,
    )
    assert {k: v for k, v in report().items() if k in expected} == expected
    assert stream.outbox_length(conn) == 0
