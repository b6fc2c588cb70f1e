"""Our asyncio clients pack commands with hiredis (``redis.client.HiredisPacking``): the same bytes as
redis-py's own packer, the same errors, and real round trips over TCP and a unix socket."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from redis.asyncio.connection import Connection, UnixDomainSocketConnection
from redis.exceptions import DataError

from agent_sessions.redis.client import HiredisPacking, async_client
from agent_sessions.redis.server import RedisServer

pytestmark = pytest.mark.anyio

COMMANDS: list[tuple[Any, ...]] = [
    ("EVALSHA", "a" * 40, 2, "as:session:agt_a:ase_1", "as:outbox", "", "*", 50.0, 100, 0.1, 1e9, -(2**63)),
    ("HSET", "k", "ünïcode", "ⓜ", b"\x00\xff\r\n", bytearray(b"ba"), memoryview(b"mv")),
    ("SET", "big", "x" * 20_000),  # past redis-py's 6,000-byte cutoff, where its packer splits the output
    ("SCRIPT LOAD", "return 1"),  # several words: sent as several arguments
    (b"CONFIG GET", b"maxmemory"),
]


def python_packed(*args: Any) -> bytes:
    return b"".join(Connection().pack_command(*args))  # redis-py's own (pure Python) packer


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: str(c[0]))
def test_same_bytes_as_redis_pys_packer(command: tuple[Any, ...]) -> None:
    assert b"".join(HiredisPacking().pack_command(*command)) == python_packed(*command)


def test_a_pipeline_is_the_commands_in_order() -> None:
    packed = b"".join(HiredisPacking().pack_commands(COMMANDS))
    assert packed == b"".join(python_packed(*command) for command in COMMANDS)


@pytest.mark.parametrize("value", [True, None, object()])
def test_values_redis_py_refuses_are_refused_alike(value: Any) -> None:
    with pytest.raises(DataError):
        python_packed("SET", "k", value)
    with pytest.raises(DataError):
        HiredisPacking().pack_command("SET", "k", value)


async def round_trip(url: str) -> None:
    client = async_client(url, 2.0)
    try:
        await client.set("k", "ünï " + "x" * 10_000)
        assert await client.get("k") == "ünï " + "x" * 10_000
        pipe = client.pipeline(transaction=False)
        pipe.hset("h", mapping={"a": 1, "b": 2.5})
        pipe.hgetall("h")
        assert await pipe.execute() == [2, {"a": "1", "b": "2.5"}]
        assert await client.eval("return ARGV[1] .. KEYS[1]", 1, "k", "v") == "vk"
    finally:
        await client.aclose()


async def test_tcp_client_packs_with_hiredis(redis_url: str) -> None:
    client = async_client(redis_url, 2.0)
    cls = client.connection_pool.connection_class
    await client.aclose()
    assert issubclass(cls, HiredisPacking) and issubclass(cls, Connection)
    await round_trip(redis_url)


async def test_unix_socket_client_keeps_its_connection_class(tmp_path: Path) -> None:
    server = RedisServer(tmp_path, unixsocket=tmp_path / "r.sock").start()
    try:
        client = async_client(server.url, 2.0)
        cls = client.connection_pool.connection_class
        await client.aclose()
        assert issubclass(cls, HiredisPacking) and issubclass(cls, UnixDomainSocketConnection)
        await round_trip(server.url)
    finally:
        server.stop()
