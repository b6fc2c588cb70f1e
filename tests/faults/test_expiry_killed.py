"""The expiry sweep of a real ``agent-sessions worker``, killed with SIGKILL mid-sweep: nothing is half
expired, and after a new worker starts every session has expired exactly once, out of every list,
index and report."""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any, cast

import httpx
import pytest
import redis

from tests.faults.helpers import FAST_REDELIVERY
from tests.support import stream
from tests.support.keys import KEYS
from tests.support.processes import env, kill_group, working
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

AGENT = "agt_expiring"
SESSIONS = 2000


def create_sessions(base: str, headers: dict[str, str]) -> None:
    """The agent (sessions idle 0.6 s expire) and its sessions, eight requests at a time."""
    body = {"key": AGENT, "name": "expiring", "default_tti_minutes": 0.01}
    assert httpx.post(f"{base}/v2/agents", json=body, headers=headers).status_code == 201

    async def run() -> None:
        async with httpx.AsyncClient(headers=headers, timeout=10) as client:

            async def one(i: int) -> None:
                metadata = {"priority": ["low", "high", "urgent"][i % 3]}
                body = {"key": f"ase_{i:05d}", "metadata": metadata}
                response = await client.post(f"{base}/v2/agents/{AGENT}/sessions", json=body)
                assert response.status_code == 201, response.text

            for start in range(0, SESSIONS, 8):
                await asyncio.gather(*(one(i) for i in range(start, min(start + 8, SESSIONS))))

    asyncio.run(run())


def expired_events(conn: redis.Redis) -> Counter[str]:
    """Expiry events per session, each counted once by its id wherever it is: in the log, or still in
    the outbox (written by the sweep, not yet relayed), or both (relayed, not yet acknowledged)."""
    entries = stream.entries(conn, KEYS.events) + stream.entries(conn)
    expired = {f["event_id"]: f["session_key"] for _, f in entries if f["type"] == "session.expired"}
    return Counter(expired.values())


def test_a_worker_killed_mid_sweep_expires_every_session_exactly_once(
    api: tuple[str, dict[str, str]], redis_url: str
) -> None:
    base, headers = api
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    create_sessions(base, headers)
    settings = env(REDIS_URL=redis_url, BROKER_URL=redis_url, EXPIRY_BATCH="1", **FAST_REDELIVERY)
    with working(settings) as first:
        eventually(lambda: conn.zcard(KEYS.expiry(KEYS.tag(AGENT))) < SESSIONS, "the sweep did not start", 60)
        kill_group(first)
    halfway = expired_events(conn)
    assert 0 < len(halfway) < SESSIONS, "killed too late to be mid-sweep"
    # Nothing half done: each session is either stored (and due) or expired once, out of every index.
    stored = {k.rsplit(":", 1)[1] for k in cast(list[str], conn.keys(KEYS.session(AGENT, "*")))}
    assert stored.isdisjoint(halfway) and len(stored) + len(halfway) == SESSIONS
    assert set(halfway.values()) == {1}
    assert conn.zcard(KEYS.expiry(KEYS.tag(AGENT))) == len(stored) == conn.zcard(KEYS.sessions(AGENT))

    with working(settings):
        eventually(
            lambda: conn.zcard(KEYS.expiry(KEYS.tag(AGENT))) == 0, "the second worker did not finish the sweep", 90
        )

        def report() -> dict[str, Any]:
            body: dict[str, Any] = httpx.get(f"{base}/v2/agents/{AGENT}/report", headers=headers).json()
            return body

        eventually(lambda: report()["sessions"]["total"] == 0, "the report did not count the expiries", 90)
    done = expired_events(conn)
    assert len(done) == SESSIONS and set(done.values()) == {1}
    assert report()["by_metadata"]["priority"] == {}  # every bucket back to zero (zeros are not shown)
    listed = httpx.get(f"{base}/v2/agents/{AGENT}/sessions", headers=headers).json()
    assert listed["sessions"] == [] and listed["metadata"]["total_count"] == 0
    for value in ("low", "high", "urgent"):
        assert not conn.exists(KEYS.dimension_index(AGENT, "priority", value))
    assert not conn.exists(KEYS.sessions_by(AGENT, "created"), KEYS.sessions_by(AGENT, "updated"))
