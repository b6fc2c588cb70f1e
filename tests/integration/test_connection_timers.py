"""The read time and keep-alive limits of our HTTP protocol, kept by one timer per connection that a
request moves rather than remakes (``web/protocol.py``). Run over real sockets through uvicorn with
``GuardedHttpToolsProtocol``, with short limits: idle connections close, busy ones do not, slow requests
are cut whatever they trickle, and many requests on one connection make no timer each."""

from __future__ import annotations

import asyncio
import time
from contextlib import AbstractAsyncContextManager
from typing import Any

from agent_sessions.web.protocol import GuardedHttpToolsProtocol
from tests.support import uvicorn_server

KEEP_ALIVE_S = 0.4
READ_S = 0.6
REQUEST = b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 2\r\n\r\nhi"


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    more = True
    while more:
        message = await receive()
        more = message.get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"2")]})
    await send({"type": "http.response.body", "body": b"ok"})


def serving() -> AbstractAsyncContextManager[int]:
    return uvicorn_server.serving(
        app, GuardedHttpToolsProtocol, timeout_keep_alive=KEEP_ALIVE_S, request_read_timeout=READ_S
    )


async def answer(reader: asyncio.StreamReader) -> bytes:
    return await asyncio.wait_for(reader.readuntil(b"\r\n\r\nok"), 2)


async def closed_after(reader: asyncio.StreamReader, started: float) -> float:
    """Seconds from ``started`` until the server closed the connection (what it sent meanwhile: nothing
    but what the caller expects, checked by the caller)."""
    while await asyncio.wait_for(reader.read(65536), 5):
        pass
    return time.monotonic() - started


def test_an_idle_connection_is_closed_after_the_keep_alive_and_a_busy_one_is_not() -> None:
    async def main() -> tuple[float, float]:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            # Busy: a request every half keep-alive, for three keep-alives; each moves the deadline.
            started = time.monotonic()
            while True:
                writer.write(REQUEST)
                assert (await answer(reader)).startswith(b"HTTP/1.1 200")
                answered = time.monotonic()
                if answered - started >= 3 * KEEP_ALIVE_S:
                    break
                await asyncio.sleep(KEEP_ALIVE_S / 2)
            busy_for = answered - started
            idle_for = await closed_after(reader, answered)  # idle since the last answer
            writer.close()
            return busy_for, idle_for

    busy_for, idle_for = asyncio.run(main())
    assert busy_for >= 3 * KEEP_ALIVE_S  # open all along
    assert KEEP_ALIVE_S * 0.9 <= idle_for < KEEP_ALIVE_S + 1.0


def test_a_request_that_trickles_in_is_cut_at_the_read_time_even_after_others() -> None:
    async def main() -> tuple[bytes, float, bytes, float]:
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST)  # one answered request first: the connection's timer is the keep-alive's
            await answer(reader)
            writer.write(b"GET /x HTTP/1.1\r\nhost: a\r\n")  # headers that never end
            started = time.monotonic()
            head = await asyncio.wait_for(reader.read(65536), 5)
            headers_cut = time.monotonic() - started
            writer.close()

            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"POST /x HTTP/1.1\r\nhost: a\r\ncontent-length: 100\r\n\r\n")
            started = time.monotonic()
            received = b""
            while time.monotonic() - started < READ_S + 2:  # a byte of body every tenth of the read time
                await asyncio.sleep(READ_S / 10)
                try:
                    writer.write(b"x")
                    await writer.drain()
                    chunk = await asyncio.wait_for(reader.read(65536), 0.01)
                except TimeoutError:
                    continue
                except ConnectionError:
                    break
                received += chunk
                if not chunk:
                    break
            body_cut = time.monotonic() - started
            writer.close()
            return head, headers_cut, received, body_cut

    head, headers_cut, received, body_cut = asyncio.run(main())
    assert head.startswith(b"HTTP/1.1 408") and READ_S / 2 <= headers_cut < READ_S + 1.0
    assert received == b"" and READ_S / 2 <= body_cut < READ_S + 1.0  # disconnected, not answered


def test_many_requests_on_one_connection_make_a_few_timers_not_one_each() -> None:
    made: list[Any] = []

    async def main() -> None:
        loop = asyncio.get_running_loop()
        call_at = loop.call_at  # asyncio's call_later makes its timer through call_at: one count each

        def counted_at(when: float, callback: Any, *args: Any, **kwargs: Any) -> asyncio.TimerHandle:
            if isinstance(getattr(callback, "__self__", None), GuardedHttpToolsProtocol):
                made.append(callback)
            return call_at(when, callback, *args, **kwargs)

        loop.call_at = counted_at  # type: ignore[method-assign, assignment]
        async with serving() as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            for _ in range(200):
                writer.write(REQUEST)
                await answer(reader)
            writer.close()

    asyncio.run(main())
    assert 1 <= len(made) <= 4, made  # uvicorn's keep-alive and a read timer per request: 400
