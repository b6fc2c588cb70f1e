"""``Batches`` keeps a few connections between batches (``redis.client.HeldConnections``) on one Redis:
a batch does not borrow a connection from the pool each time, a kept connection Redis closed is replaced
before a command is sent on it, and a small pool keeps none idle. (On a cluster, batches go through the
cluster client's own per-node connections.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis

from agent_sessions.redis.client import Batches, async_client
from agent_sessions.redis.scripts import Script
from tests.integration.test_batches import COUNT  # counts its calls: a call sent twice, or lost, shows

pytestmark = pytest.mark.anyio


async def test_batches_keep_a_connection_instead_of_borrowing_one_from_the_pool_each_time(redis_url: str) -> None:
    client = async_client(redis_url, 2.0)
    pool: Any = client.connection_pool
    borrowed = 0
    lend = pool.get_connection

    async def counting() -> Any:
        nonlocal borrowed
        borrowed += 1
        return await lend()

    script = Script(Batches(client), COUNT)
    assert await script({"key": "n"}, {}) == 1  # loads the script, keeps the connection
    pool.get_connection = counting
    replies = [await script({"key": "n"}, {}) for _ in range(20)]  # one after another: 20 batches
    await client.aclose()
    assert replies == list(range(2, 22))
    assert borrowed == 0


async def test_a_kept_connection_redis_closed_is_replaced_before_a_command_is_sent(
    redis_url: str, sync_redis: redis.Redis
) -> None:
    client = async_client(redis_url, 2.0)
    script = Script(Batches(client), COUNT)
    assert await script({"key": "n"}, {}) == 1
    killed = sync_redis.client_kill_filter(_type="normal", skipme=True)  # as a Redis restart would
    assert killed >= 1
    await asyncio.sleep(0.1)  # the loop sees the close (a restart takes longer than that)
    assert [await script({"key": "n"}, {}) for _ in range(3)] == [2, 3, 4]  # no error, none run twice
    await client.aclose()


async def test_a_small_pool_keeps_no_connection_idle(redis_url: str) -> None:
    """One connection in all: after a batch it is back in the pool for any other command (kept by the
    batches, the GET below would wait for it and time out)."""
    client = async_client(redis_url, 0.5, pool_size=1)
    script = Script(Batches(client), COUNT)
    assert await script({"key": "n"}, {}) == 1
    assert await client.get("n") == "1"
    assert await script({"key": "n"}, {}) == 2
    await client.aclose()
