"""Auto-pipelining (``redis.client.Batches``) on a real Redis: concurrent script calls share round
trips, and each caller still gets its own reply, its own error, or the outage."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
import redis
from redis.exceptions import ResponseError
from typing_extensions import TypedDict

from agent_sessions.errors import StoreUnavailable
from agent_sessions.redis.client import Batches, async_client, sync_client
from agent_sessions.redis.scripts import Call, Declared, Lua, NoArgs, Script, SyncScript
from agent_sessions.redis.server import free_port

pytestmark = [pytest.mark.anyio, pytest.mark.both_topologies]


class Key(TypedDict):
    key: str


class Value(TypedDict):
    value: str


# Echoes its argument; fails for "boom" (one caller's error must stay that caller's).
ECHO_SOURCE = "if ARGV[1] == 'boom' then return redis.error_reply('boom') end return {KEYS[1], ARGV[1]}"
ECHO = Declared("echo", Key, Value, source=Lua("echo", ECHO_SOURCE))


class CountingBatches(Batches):
    def __init__(self, client: Any) -> None:
        super().__init__(client)
        self.sizes: list[int] = []

    async def _flush(self, batch: list[Any]) -> None:
        self.sizes.append(len(batch))
        await super()._flush(batch)


async def test_concurrent_calls_share_pipelines_and_get_their_own_replies(redis_url: str) -> None:
    client = async_client(redis_url, 2.0)
    batches = CountingBatches(client)
    script = Script(batches, ECHO)
    await script({"key": "k"}, {"value": "warm"})  # loads the script
    batches.sizes.clear()
    replies = await asyncio.gather(*(script({"key": f"k{i}"}, {"value": str(i)}) for i in range(20)))
    await client.aclose()
    assert replies == [[f"k{i}", str(i)] for i in range(20)]
    assert batches.sizes == [8, 8, 4]  # one round trip each


async def test_an_error_is_its_callers_alone(redis_url: str) -> None:
    client = async_client(redis_url, 2.0)
    script = Script(Batches(client), ECHO)
    results: list[Any] = list(
        await asyncio.gather(
            script({"key": "a"}, {"value": "1"}),
            script({"key": "b"}, {"value": "boom"}),
            script({"key": "c"}, {"value": "3"}),
            return_exceptions=True,
        )
    )
    await client.aclose()
    assert results[0] == ["a", "1"] and results[2] == ["c", "3"]
    assert isinstance(results[1], ResponseError) and "boom" in str(results[1])


async def test_scripts_load_again_when_redis_forgot_them(redis_url: str, sync_redis: redis.Redis) -> None:
    client = async_client(redis_url, 2.0)
    script = Script(Batches(client), ECHO)
    await script({"key": "k"}, {"value": "1"})
    sync_redis.script_flush()
    replies = await asyncio.gather(*(script({"key": "k"}, {"value": str(i)}) for i in range(10)))
    await client.aclose()
    assert replies == [["k", str(i)] for i in range(10)]


async def test_an_outage_fails_every_call_of_the_batch() -> None:
    client = async_client(f"redis://127.0.0.1:{free_port()}/0", 0.3)  # nothing listens there
    script = Script(Batches(client), ECHO)
    results = await asyncio.gather(*(script({"key": "k"}, {"value": str(i)}) for i in range(5)), return_exceptions=True)
    await client.aclose()
    assert all(isinstance(r, StoreUnavailable) for r in results)


# Counts its calls: a call sent twice shows.
COUNT = Declared("count", Key, NoArgs, source=Lua("count", "return redis.call('INCR', KEYS[1])"))


async def test_many_sends_again_only_the_calls_a_node_had_forgotten_the_script_for(redis_url: str) -> None:
    """On a cluster a promoted replica (or a restarted node) has forgotten the scripts the other primaries
    still know: only that node's calls are sent again, so none runs twice (on one node: all of them)."""
    calls: list[Call] = [([f"count:{{{tag}}}"], []) for tag in "abcdefghij"]  # tags spread over every primary

    def forget_on_one_node() -> None:
        one_node = redis.Redis.from_url(redis_url)  # the URL's node only, not the whole cluster
        one_node.script_flush()
        one_node.close()

    client = async_client(redis_url, 2.0)
    script = Script(Batches(client), COUNT)
    assert await script.many(calls) == [1] * len(calls)
    forget_on_one_node()
    assert await script.many(calls) == [2] * len(calls)
    await client.aclose()
    conn = sync_client(redis_url)
    sync_script = SyncScript(conn, COUNT)
    assert sync_script.many(calls) == [3] * len(calls)
    forget_on_one_node()
    assert sync_script.many(calls) == [4] * len(calls)
    conn.close()


async def test_more_concurrent_batches_than_connections_wait_for_one(redis_url: str) -> None:
    """Two connections (per node), 25 batches at once: each waits for a free connection, none fails."""
    client = async_client(redis_url, 2.0, pool_size=2)
    script = Script(Batches(client), ECHO)
    replies = await asyncio.gather(*(script({"key": f"k{{{i % 7}}}"}, {"value": str(i)}) for i in range(200)))
    await client.aclose()
    assert replies == [[f"k{{{i % 7}}}", str(i)] for i in range(200)]
