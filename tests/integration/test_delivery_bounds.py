"""What a hostile receiver cannot make a worker hold: an answer is read up to 64 KiB (an endless one
does not hold the attempt), and cookies it sets are never kept or sent back. And what an admin cannot
make one endpoint hold: at most 100 agent keys."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
import pytest

from agent_sessions.config import Settings
from agent_sessions.redis.client import async_client
from agent_sessions.webhooks.delivery import DeliveryLoop
from agent_sessions.webhooks.destinations import resolve
from agent_sessions.webhooks.signing import ANSWER_MAX_BYTES, post
from agent_sessions.webhooks.store import Bounds, Webhooks
from tests.support.api import caller
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

KEY = b"0123456789abcdef0123456789abcdef"


class RawReceiver:
    """An HTTP receiver written at the socket: it answers what ``answer`` returns for each request it
    reads, and records each request's head and whether the connection was closed by the client."""

    def __init__(self, answer: Callable[[asyncio.StreamWriter], Any]) -> None:
        self.answer = answer
        self.heads: list[bytes] = []
        self.closed = asyncio.Event()
        self.port = 0

    async def __aenter__(self) -> RawReceiver:
        self.server = await asyncio.start_server(self.serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                self.heads.append(head)
                await self.answer(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            self.closed.set()
        finally:
            writer.close()


@pytest.fixture
async def loop(redis_url: str) -> AsyncIterator[DeliveryLoop]:
    client = async_client(redis_url, 2.0)
    delivery = DeliveryLoop(
        Settings(redis_url=redis_url, webhook_timeout=30), Webhooks(client, KEYS, Bounds(10, 10, 10))
    )
    yield delivery
    for session in delivery.clients.values():
        await session.close()
    await client.aclose()


@pytest.mark.anyio
async def test_an_endless_answer_is_read_up_to_64_kib_and_its_connection_closed(loop: DeliveryLoop) -> None:
    sent = 0

    async def endless(writer: asyncio.StreamWriter) -> None:
        nonlocal sent
        writer.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
        chunk = b"x" * 16384
        while True:  # until the client goes away
            writer.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            await writer.drain()
            sent += len(chunk)

    async with RawReceiver(endless) as receiver:
        destination = await resolve(f"http://127.0.0.1:{receiver.port}/hook", allow_private=True)
        with anyio.fail_after(20):  # reading the whole answer would never end
            assert await post(loop.client("whe_a"), destination, [KEY], "msg_1", b"{}") == 200
            await receiver.closed.wait()  # the connection is dropped, not kept to drain the rest
    assert sent >= ANSWER_MAX_BYTES


@pytest.mark.anyio
async def test_cookies_a_receiver_sets_are_never_sent_back(loop: DeliveryLoop) -> None:
    """Attempts go to the checked address (an IP), where aiohttp's default jar keeps nothing either; a jar
    that keeps cookies for it (``CookieJar(unsafe=True)``) fails here."""

    async def with_cookies(writer: asyncio.StreamWriter) -> None:
        cookies = b"".join(b"Set-Cookie: c%d=%s; Path=/\r\n" % (i, b"v" * 100) for i in range(50))
        writer.write(b"HTTP/1.1 204 No Content\r\n" + cookies + b"Content-Length: 0\r\n\r\n")
        await writer.drain()

    async with RawReceiver(with_cookies) as receiver:
        destination = await resolve(f"http://127.0.0.1:{receiver.port}/hook", allow_private=True)
        session = loop.client("whe_b")
        for message in ("msg_1", "msg_2", "msg_3"):
            assert await post(session, destination, [KEY], message, b"{}") == 204
    assert len(receiver.heads) == 3
    assert not any(b"\r\ncookie:" in head.lower() for head in receiver.heads)
    assert len(session.cookie_jar) == 0


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, webhook_allow_private_networks=True)


def test_an_endpoint_names_at_most_100_agents(client: Any, admin: dict[str, str]) -> None:
    api = caller(client, admin)
    hooks = "/v2/webhook_endpoints"
    url = "http://127.0.0.1:9/hook"
    agents = [f"agt_{i:03d}" for i in range(101)]
    types = ["session.updated"]
    body = api("POST", hooks, 400, json={"url": url, "event_types": types, "agent_keys": agents})
    assert list(body["field_errors"]) == ["agent_keys"]
    made = api("POST", hooks, 201, json={"url": url, "event_types": types, "agent_keys": agents[:100]})
    assert len(made["agent_keys"]) == 100
    assert list(api("PATCH", f"{hooks}/{made['id']}", 400, json={"agent_keys": agents})["field_errors"]) == [
        "agent_keys"
    ]
