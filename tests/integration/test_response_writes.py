"""Our HTTP protocol writes an answer of known length in one ``send()``: head and body together (see
``web/protocol.py``). Run over real sockets through uvicorn with ``GuardedHttpToolsProtocol``; the
transport's writes are counted, which is what the saving is (one system call and one client wake-up
per answer). Streams, ``HEAD``, ``100 Continue`` and an application that fails between head and body
keep what they did: the head goes out when it must."""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from agent_sessions.web.protocol import GuardedHttpToolsProtocol
from tests.support import uvicorn_server

WRITES: list[bytes] = []


class CountingProtocol(GuardedHttpToolsProtocol):
    """Ours, with every write its connection's transport takes recorded."""

    def connection_made(self, transport: Any) -> None:
        write = transport.write

        def recorded(data: bytes) -> None:
            WRITES.append(bytes(data))
            write(data)

        transport.write = recorded
        super().connection_made(transport)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    more = True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/event-stream")]})
        await asyncio.sleep(0.3)  # the head must reach the client before the first event
        await send({"type": "http.response.body", "body": b"data: 1\n\n", "more_body": False})
        return
    if path == "/fail":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"10")]})
        raise RuntimeError("failed between head and body")
    answer = b'{"echo":"' + body + b'"}'
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(answer)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": answer})


def serving() -> AbstractAsyncContextManager[int]:
    return uvicorn_server.serving(app, CountingProtocol)


async def exchange(port: int, request: bytes, then: bytes = b"", pause: float = 0.0) -> list[bytes]:
    """Send ``request`` (and ``then`` after ``pause``); what arrives, read by read, until closed or idle."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    received: list[bytes] = []
    if then:
        received.append(await asyncio.wait_for(reader.read(65536), 2))  # the interim answer
        await asyncio.sleep(pause)
        writer.write(then)
    while True:
        try:
            chunk = await asyncio.wait_for(reader.read(65536), 0.6)
        except TimeoutError:
            break
        if not chunk:
            break
        received.append(chunk)
    writer.close()
    return received


def run(coroutine: Any) -> Any:
    return asyncio.run(coroutine)


@pytest.fixture(autouse=True)
def _clear() -> None:
    WRITES.clear()


def test_an_answer_of_known_length_is_one_write_and_keep_alive_goes_on() -> None:
    async def main() -> list[bytes]:
        async with serving() as port:
            request = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi"
            return await exchange(port, request + request)  # two requests on one connection

    received = b"".join(run(main()))
    assert received.count(b"HTTP/1.1 200 OK") == 2 and received.count(b'{"echo":"hi"}') == 2
    assert len(WRITES) == 2  # one per answer (it was two per answer: head, then body)
    assert all(w.startswith(b"HTTP/1.1 200 OK") and w.endswith(b'{"echo":"hi"}') for w in WRITES)


def test_a_stream_head_is_written_before_its_body() -> None:
    async def main() -> list[bytes]:
        async with serving() as port:
            return await exchange(port, b"GET /stream HTTP/1.1\r\nhost: a\r\n\r\n")

    received = run(main())
    assert received[0].startswith(b"HTTP/1.1 200 OK") and b"data: 1" not in received[0]  # before the sleep ended
    assert b"data: 1" in b"".join(received)
    assert WRITES[0].startswith(b"HTTP/1.1 200 OK") and b"transfer-encoding: chunked" in WRITES[0]


def test_a_head_request_is_answered_though_no_body_follows() -> None:
    async def main() -> list[bytes]:
        async with serving() as port:
            return await exchange(port, b"HEAD /x HTTP/1.1\r\nhost: a\r\n\r\n")

    received = b"".join(run(main()))
    assert received.startswith(b"HTTP/1.1 200 OK") and b"content-length: 11" in received


def test_100_continue_goes_out_at_once_and_the_answer_after_the_body() -> None:
    async def main() -> list[bytes]:
        async with serving() as port:
            head = b"POST /x HTTP/1.1\r\nhost: a\r\nexpect: 100-continue\r\ncontent-length: 2\r\n\r\n"
            return await exchange(port, head, then=b"ok", pause=0.1)

    received = run(main())
    assert received[0] == b"HTTP/1.1 100 Continue\r\n\r\n"
    answer = b"".join(received[1:])
    assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b'{"echo":"ok"}')


def test_an_application_failing_between_head_and_body_still_closes_the_connection() -> None:
    async def main() -> list[bytes]:
        async with serving() as port:
            return await exchange(port, b"GET /fail HTTP/1.1\r\nhost: a\r\n\r\n")

    received = b"".join(run(main()))
    assert received.startswith(b"HTTP/1.1 200 OK") and b"content-length: 10" in received  # what it sent, then closed
