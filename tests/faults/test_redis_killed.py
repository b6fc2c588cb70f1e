"""Redis killed with SIGKILL under `appendfsync always` while PATCHes run: every acknowledged PATCH
survives the restart; while Redis is down the API answers a fast 503; it recovers by itself."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import httpx
import pytest
import redis

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.redis.server import RedisServer
from tests.support.keys import KEYS
from tests.support.processes import serving
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e
SESSIONS = 12
FAST = 1.0  # "well under a second" for a 503 while Redis is down (REDIS_TIMEOUT is 0.3 s here)


def test_no_acknowledged_patch_is_lost_and_outage_is_fast_503(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    conn = redis.Redis.from_url(server.url, decode_responses=True)
    _, secret = Keyring(conn, KEYS).create(Role.ADMIN, rate=1e6, burst=10**6)
    headers = {"x-api-key": secret}
    acknowledged: list[tuple[str, int, str]] = []
    outage: list[tuple[float, int]] = []  # (seconds, status) of answers while Redis was down
    try:
        with serving(server.url, REDIS_TIMEOUT="0.3") as base:
            httpx.post(f"{base}/v2/agents", json={"key": "agt_f", "name": "f"}, headers=headers)
            for i in range(SESSIONS):
                httpx.post(f"{base}/v2/agents/agt_f/sessions", json={"key": f"ase_{i}"}, headers=headers)
            down = {"now": False}

            async def writer(w: int, client: httpx.AsyncClient, until: float) -> None:
                n = 0
                while time.monotonic() < until:
                    n += 1
                    session, text = f"ase_{(w + n) % SESSIONS}", f"w{w}-{n}"
                    started = time.monotonic()
                    try:
                        r = await client.patch(f"{base}/v2/agents/agt_f/sessions/{session}", json={"description": text})
                    except httpx.TransportError:
                        continue
                    if r.status_code == 200:
                        acknowledged.append((session, r.json()["version"], text))
                    elif down["now"]:
                        outage.append((time.monotonic() - started, r.status_code))
                    await asyncio.sleep(0.002)

            async def chaos() -> None:
                await asyncio.sleep(1.0)
                server.kill()  # SIGKILL: no shutdown, no final fsync
                down["now"] = True
                await asyncio.sleep(1.0)
                down["now"] = False
                await asyncio.to_thread(server.start)  # same port, same AOF

            async def run() -> None:
                async with httpx.AsyncClient(headers=headers, timeout=10) as client:
                    until = time.monotonic() + 4.0
                    await asyncio.gather(chaos(), *(writer(w, client, until) for w in range(6)))

            asyncio.run(run())
            # It recovers with no restart of the API.
            eventually(lambda: httpx.get(f"{base}/readyz").status_code == 200, "not ready after Redis returned", 10)
            assert (
                httpx.patch(
                    f"{base}/v2/agents/agt_f/sessions/ase_0", json={"enabled": False}, headers=headers
                ).status_code
                == 200
            )
    finally:
        server.stop()

    assert len(acknowledged) > 50 and outage, (len(acknowledged), outage)
    assert {status for _, status in outage} == {503}
    assert max(seconds for seconds, _ in outage) < FAST
    # Every acknowledged PATCH is in the restarted Redis: its version, with its value, in the history.
    server.start()
    try:
        for session, version, text in acknowledged:
            entries = [json.loads(e) for e in conn.lrange(KEYS.history("agt_f", session), 0, -1)]
            entry = next((e for e in entries if e["v"] == version), None)
            assert entry is not None and entry["n"]["description"] == text, (session, version, text)
    finally:
        server.stop()
