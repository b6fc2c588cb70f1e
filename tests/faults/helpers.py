"""Shared steps of the worker fault tests: a stream of PATCHes with a fault in the middle (then
``tests.support.recount.assert_report_equals_recount``: the proof that nothing was lost)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx

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
