"""Two API processes, one Redis, many concurrent connections: in every window the number of
successful requests stays within burst + rate x window."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import httpx
import pytest
import redis

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from tests.support.keys import KEYS
from tests.support.processes import serving

pytestmark = pytest.mark.e2e
RATE, BURST = 20.0, 10
DURATION, CONNECTIONS = 2.0, 16


@pytest.fixture
def two_servers(redis_url: str) -> Iterator[list[str]]:
    with serving(redis_url) as first, serving(redis_url) as second:
        yield [first, second]


async def hammer(bases: list[str], secret: str) -> list[tuple[float, float, int]]:
    """(sent, received, status) of every request, from CONNECTIONS concurrent clients for DURATION."""
    results: list[tuple[float, float, int]] = []
    deadline = time.monotonic() + DURATION

    async def worker(i: int) -> None:
        async with httpx.AsyncClient(base_url=bases[i % len(bases)], headers={"x-api-key": secret}) as client:
            while time.monotonic() < deadline:
                sent = time.monotonic()
                response = await client.get("/v2/agents")
                results.append((sent, time.monotonic(), response.status_code))

    await asyncio.gather(*(worker(i) for i in range(CONNECTIONS)))
    return results


def test_successes_never_exceed_burst_plus_rate_times_window(redis_url: str, two_servers: list[str]) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(conn, KEYS).create(Role.VIEWER, rate=RATE, burst=BURST)
    results = asyncio.run(hammer(two_servers, secret))
    statuses = {status for _, _, status in results}
    assert statuses <= {200, 429}
    ok = sorted((sent, received) for sent, received, status in results if status == 200)
    assert 429 in statuses and len(ok) >= BURST  # the limit was reached, and the test was not vacuous
    # Each success happened in Redis somewhere inside [sent, received]. For any window from one
    # success's sending to another's receipt, the successes wholly inside it are bounded.
    for i, (start, _) in enumerate(ok):
        for _, end in ok[i:]:
            if end <= start:
                continue
            inside = sum(1 for s, r in ok if s >= start and r <= end)
            assert inside <= BURST + RATE * (end - start), (inside, end - start)
    # And over the whole run, the limit let through about what it should (not far fewer).
    span = max(r for _, r in ok) - min(s for s, _ in ok)
    assert len(ok) >= 0.5 * (BURST + RATE * span) - 1
