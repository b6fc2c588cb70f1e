"""``GET /v2/events/stream``: the event log as Server-Sent Events.

A stream first reads the log from its start position (``Last-Event-ID``, ``after``, or the log's end
for a live-only feed) like ``GET /v2/events`` does, then takes new events from the process's shared
reader (``feed.Feed``). Each message carries ``id`` (the cursor just after the event: reconnecting
with it as ``Last-Event-ID`` resumes with the next one), ``event`` (the type) and ``data`` (the event's
JSON). A comment line goes out after ``SSE_HEARTBEAT_SECONDS`` without a message.

A stream ends when the client goes, when the server shuts down (``web/protocol.py`` sets its stop
event), and when the client stops reading: a message not taken within a heartbeat interval, or more
events waiting for it than ``SSE_QUEUE_MAX``, drops it.
"""

from __future__ import annotations

import asyncio
import contextlib

import orjson
from starlette.responses import Response
from starlette.types import Message, Receive, Scope, Send

from agent_sessions.errors import ServiceError
from agent_sessions.events.feed import EventFilter, Feed, Subscriber, encode_cursor, page, sse_message
from agent_sessions.events.store import entry_order
from agent_sessions.web.protocol import STOP_STREAM

CATCH_UP_PAGE = 500
HEADERS = {"cache-control": "no-cache", "x-accel-buffering": "no"}


class Dropped(Exception):
    """The client is gone, too slow, or the server is stopping: end the stream."""


class EventStream(Response):
    media_type = "text/event-stream"

    def __init__(self, feed: Feed, where: EventFilter, start: str, heartbeat: float, owner: str = "") -> None:
        """``owner``: the API key the stream counts against (SSE_MAX_PER_KEY)."""
        super().__init__(status_code=200, headers=HEADERS, media_type=self.media_type)
        self.raw_headers = [(k, v) for k, v in self.raw_headers if k != b"content-length"]  # it has no end
        self.feed, self.where, self.start, self.heartbeat = feed, where, start, heartbeat
        self.owner = owner

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self._stop, self._gone, self._send = asyncio.Event(), asyncio.Event(), send
        scope[STOP_STREAM] = self._stop  # set by the server's graceful shutdown
        watcher = asyncio.get_running_loop().create_task(_until_disconnect(receive, self._gone))
        try:
            async with self.feed.subscription(self.where, self.owner) as subscriber:
                await send({"type": "http.response.start", "status": 200, "headers": self.raw_headers})
                # Ended also when Redis fails or the position falls out of retention mid-stream: the
                # client reconnects with its Last-Event-ID and gets the answer (503, 410) as a status.
                with contextlib.suppress(Dropped, ServiceError):
                    position = await self._catch_up(subscriber, self.start)
                    await self._follow(subscriber, position)
        finally:
            watcher.cancel()
        if not self._gone.is_set():  # end the response properly (a client that stopped reading may not take it)
            with contextlib.suppress(TimeoutError, OSError):
                await asyncio.wait_for(send({"type": "http.response.body", "body": b"", "more_body": False}), 1)

    def _ending(self) -> bool:
        return self._stop.is_set() or self._gone.is_set() or self.feed.closing.is_set()

    async def _emit(self, body: bytes) -> None:
        """Send, unless the stream must end; a client that does not take it within a heartbeat is gone."""
        if self._ending():
            raise Dropped()
        message: Message = {"type": "http.response.body", "body": body, "more_body": True}
        try:
            await asyncio.wait_for(self._send(message), self.heartbeat)
        except (TimeoutError, OSError):
            raise Dropped() from None

    async def _catch_up(self, subscriber: Subscriber, position: str) -> str:
        """Read the log from ``position`` to its end; returns the last position sent. New events meanwhile
        wait in the subscriber's queue; if it overflowed, the log is read again from where we are."""
        while True:
            items, position, has_more = await page(self.feed.events, self.where, position, CATCH_UP_PAGE)
            for entry_id, event in items:
                await self._emit(sse_message(encode_cursor(entry_id), event["type"], _json(event)))
            if has_more:
                continue
            if not subscriber.overflowed:
                return position
            subscriber.overflowed = False
            while not subscriber.queue.empty():
                subscriber.queue.get_nowait()

    async def _follow(self, subscriber: Subscriber, position: str) -> None:
        after = entry_order(position)
        while True:
            subscriber.woken.clear()
            while not subscriber.queue.empty():
                item = subscriber.queue.get_nowait()
                if entry_order(item.entry_id) <= after:
                    continue  # read already while catching up
                await self._emit(sse_message(encode_cursor(item.entry_id), item.event["type"], item.data))
                after = entry_order(item.entry_id)
            if subscriber.overflowed:
                raise Dropped()  # further behind than SSE_QUEUE_MAX: reconnect with Last-Event-ID
            woken = await _first(subscriber.woken, self._stop, self._gone, self.feed.closing, seconds=self.heartbeat)
            if self._ending():
                raise Dropped()
            if not woken:
                await self._emit(b": keep-alive\n\n")


def _json(event: object) -> bytes:
    return orjson.dumps(event)


async def _first(*events: asyncio.Event, seconds: float) -> bool:
    """Until one of ``events`` is set (True) or ``seconds`` pass (False)."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        done, _ = await asyncio.wait(waits, timeout=seconds, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()
    return bool(done)


async def _until_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
