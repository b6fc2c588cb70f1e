"""uvicorn's httptools protocol with the two limits it lacks: header size and read time.

- The request line and headers together may take at most ``max_header_bytes`` (the config's
  ``h11_max_incomplete_event_size``, which uvicorn's h11 protocol uses for the same purpose): past it the
  client gets 431 and the connection is closed, before any of it reaches the application. Without this,
  httptools buffers headers of any size (a few connections sending 25 MB headers grew the process by
  hundreds of MB).
- A request must arrive whole, headers and body, within ``request_read_timeout`` seconds of its first
  byte: a client that sends headers too slowly gets 408; one that stalls in its body is disconnected
  (the application sees a client disconnect). Idle keep-alive connections are uvicorn's own
  ``timeout_keep_alive``.

Both waits, the read time and uvicorn's keep-alive (``timeout_keep_alive``, between requests), are kept
by one timer per connection that is re-armed only when it fires: a request moves a deadline, it does
not make a timer. uvicorn's own keep-alive, and a read timer per request, cost a ``call_later`` and a
``cancel`` each per request, about 2.4 µs of CPU per pair on uvloop (two pairs: 2-3% of a PATCH).
A connection past its deadline is closed at most a moment after it; one that moved its deadline costs a
timer firing once per timeout, not one per request.

And a saving: a response whose head announces its length (every answer but a stream) goes out in
one write, head and body together. uvicorn writes the head when the application sends
``http.response.start`` and the body at ``http.response.body``: two ``send()`` calls, two wake-ups of
the client, for answers that are complete at once. Each request's cycle gets a ``HeldHead`` in place of
the transport, which holds that head until the body's first write. A stream's head (chunked) and a
``HEAD`` answer's (no body follows) are written at once, as before.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from agent_sessions.errors import HeadersTooLarge, RequestTimeout


class HeaderTooLarge(Exception):
    """Raised from the parser callback; httptools wraps it in an HttpParserCallbackError."""


def _error(status: bytes, code: str, message: str) -> bytes:
    body = orjson.dumps({"code": code, "messages": [message]})
    return (
        b"HTTP/1.1 " + status + b"\r\ncontent-type: application/json\r\nconnection: close\r\n"
        b"content-length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )


STOP_STREAM = "agent_sessions.stop_stream"


class HeldHead:
    """The transport as one request's cycle sees it (uvicorn's cycle calls only ``write``, ``close``
    and ``is_closing``). Its first write that is not an interim "1xx" answer is the response's head;
    when the head announces a length, it is held and written with the next write, the body's. (No
    reference to the cycle: a reference cycle per request would be left to the garbage collector.)"""

    __slots__ = ("head", "holds", "seen", "transport")

    def __init__(self, transport: asyncio.Transport, head_request: bool) -> None:
        self.transport = transport
        self.head = b""
        self.seen = False  # the head has been written or held
        self.holds = not head_request  # a HEAD answer has no body to carry its head

    def write(self, data: bytes) -> None:
        if self.seen:
            if self.head:
                data, self.head = self.head + data, b""
            self.transport.write(data)
        elif data.startswith(b"HTTP/1.1 1"):  # "100 Continue", before the answer
            self.transport.write(data)
        else:
            self.seen = True
            if self.holds and b"\r\ncontent-length: " in data:
                self.head = data
            else:
                self.transport.write(data)

    def close(self) -> None:
        if self.head:  # the application failed between head and body: what it sent, then the close
            self.transport.write(self.head)
            self.head = b""
        self.transport.close()

    def is_closing(self) -> bool:
        return self.transport.is_closing()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    def __init__(self, config: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(config, *args, **kwargs)
        self.max_header_bytes: int = config.h11_max_incomplete_event_size or 16 * 1024
        self.read_timeout: float = getattr(config, "request_read_timeout", 10.0)
        self._header_bytes = 0
        self._too_large = False
        self._headers_done = True
        # The connection's one timer (see the module's docstring): the wait it keeps, and when it fires
        self._deadline: float | None = None
        self._on_deadline: Callable[[], None] = self.timeout_keep_alive_handler
        self._idle = False  # the wait is uvicorn's keep-alive, between requests
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at = 0.0

    def shutdown(self) -> None:
        """Graceful shutdown. A response that never ends by itself (the live event feed) put an
        ``asyncio.Event`` in its scope under ``STOP_STREAM``: set, it ends the stream, so that the
        shutdown does not wait for it; the connection then closes like any other."""
        super().shutdown()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:
            stop = cycle.scope.get(STOP_STREAM)
            if isinstance(stop, asyncio.Event):
                stop.set()

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._header_bytes = 0
        self._headers_done = False
        self._arm()

    def on_url(self, url: bytes) -> None:
        self._count(len(url))
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self._count(len(name) + len(value) + 4)
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self._headers_done = True
        existing = self.cycle
        super().on_headers_complete()
        if self.cycle is not existing:  # a request's cycle, made just now; its task has not run yet
            self.cycle.transport = HeldHead(self.transport, self.scope["method"] == "HEAD")  # type: ignore[assignment]

    def on_message_complete(self) -> None:
        self._disarm()
        super().on_message_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._deadline = None
        if self._timer is not None:  # not left to fire on a closed connection, holding it meanwhile
            self._timer.cancel()
            self._timer = None
        super().connection_lost(exc)

    def on_response_complete(self) -> None:
        # uvicorn's, with its keep-alive timer per response replaced by the connection's one timer
        self.server_state.total_requests += 1
        if self.transport.is_closing():
            return
        self._unset_keepalive_if_required()
        self.flow.resume_reading()
        if self.pipeline:
            cycle, app = self.pipeline.pop()
            self._start_asgi_task(cycle, app)
        else:
            self._wait(self.timeout_keep_alive, self.timeout_keep_alive_handler, idle=True)

    def _unset_keepalive_if_required(self) -> None:
        # uvicorn calls this on every read, also in the middle of a request: only the keep-alive ends there
        if self._idle:
            self._disarm()

    def send_400_response(self, msg: str) -> None:
        if self._too_large:  # the parser error was ours: the headers passed the limit
            self._disarm()
            self.transport.write(
                _error(
                    b"431 Request Header Fields Too Large",
                    HeadersTooLarge.code,
                    f"request line and headers must be at most {self.max_header_bytes} bytes",
                )
            )
            self.transport.close()
            return
        super().send_400_response(msg)

    def _count(self, size: int) -> None:
        self._header_bytes += size
        if self._header_bytes > self.max_header_bytes:
            self._too_large = True
            raise HeaderTooLarge()

    def _arm(self) -> None:
        self._wait(self.read_timeout, self._read_timed_out, idle=False)

    def _disarm(self) -> None:
        self._deadline, self._idle = None, False

    def _wait(self, seconds: float, then: Callable[[], None], idle: bool) -> None:
        """Call ``then`` in ``seconds`` unless the wait is moved or ended before: the timer is made anew
        only when none is pending or it would fire too late for this deadline."""
        deadline = self.loop.time() + seconds
        self._deadline, self._on_deadline, self._idle = deadline, then, idle
        if self._timer is None or deadline < self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer, self._timer_at = self.loop.call_at(deadline, self._fired), deadline

    def _fired(self) -> None:
        self._timer = None
        deadline = self._deadline
        if deadline is None:
            return
        if self.loop.time() + 0.001 < deadline:  # the wait moved since the timer was made
            self._timer, self._timer_at = self.loop.call_at(deadline, self._fired), deadline
            return
        self._deadline, self._idle = None, False
        self._on_deadline()

    def _read_timed_out(self) -> None:
        if self.transport.is_closing():
            return
        if not self._headers_done:
            message = f"the request did not arrive within {self.read_timeout:g} s"
            self.transport.write(_error(b"408 Request Timeout", RequestTimeout.code, message))
        self.transport.close()
