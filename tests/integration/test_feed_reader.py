"""The live feed's one reader per process (events/feed.py), on a real Redis: subscribers that arrive
together share it, and it stops once the last one leaves."""

from __future__ import annotations

import asyncio
import time

import redis

from agent_sessions.events.feed import EventFilter, Feed
from agent_sessions.events.store import EventLog
from agent_sessions.redis.client import async_client
from tests.support.keys import KEYS

BLOCK_MS = 200


def xread_calls(conn: redis.Redis) -> int:
    stats = conn.info("commandstats")
    return int(stats.get("cmdstat_xread", {}).get("calls", 0))


def test_subscribers_arriving_together_start_one_reader(redis_url: str, sync_redis: redis.Redis) -> None:
    async def run() -> tuple[int, float, int]:
        client = async_client(redis_url, 2.0)
        feed = Feed(EventLog(client, KEYS), block_ms=BLOCK_MS, max_per_key=100)
        subscribed, leave = asyncio.Barrier(51), asyncio.Event()

        async def subscriber() -> None:
            async with feed.subscription(EventFilter()):
                await subscribed.wait()
                await leave.wait()

        tasks = [asyncio.create_task(subscriber()) for _ in range(50)]
        await subscribed.wait()
        before, started = xread_calls(sync_redis), time.monotonic()
        await asyncio.sleep(1)
        reads, seconds = xread_calls(sync_redis) - before, time.monotonic() - started
        leave.set()
        await asyncio.gather(*tasks)
        await asyncio.sleep(2 * BLOCK_MS / 1000)  # the reader's read in flight returns, and it stops
        after_leaving = xread_calls(sync_redis)
        await asyncio.sleep(3 * BLOCK_MS / 1000)
        idle = xread_calls(sync_redis) - after_leaving
        await feed.close()
        await client.aclose()
        return reads, seconds, idle

    reads, seconds, idle = asyncio.run(run())
    # An empty log: each blocking read of one reader takes BLOCK_MS at least. A reader per subscriber
    # (50 arriving at once) would read 50 times in the first BLOCK_MS alone.
    assert 1 <= reads <= seconds / (BLOCK_MS / 1000) + 2, (reads, seconds)
    assert idle == 0  # nobody listens: nobody reads
