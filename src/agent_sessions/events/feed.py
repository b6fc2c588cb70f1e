"""The event log for clients: cursors, filters, pages, long polls, and the live feed's shared reader.

A cursor names a position in the log: every event after it, and none before. It is opaque to clients
(``c1.`` and the base64url of ``<partition>:<entry id>`` pairs, one partition today), so that a log
split into partitions later keeps the meaning of cursors already handed out.

The live feed (``Feed``): one reader per API process follows the log with blocking reads and hands
each new event, decoded and encoded once, to every subscriber whose filter it passes. However many
subscribers a process has, it reads the log once. A subscriber has a bounded queue; one that falls
further behind than that (a client that stopped reading) is dropped and reconnects with its last id.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import logging
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import orjson

from agent_sessions.errors import InvalidRequest, RateLimited, StoreUnavailable
from agent_sessions.events.model import TYPES, EventDict, event_from_entry
from agent_sessions.events.store import Entry, EventLog, entry_order

log = logging.getLogger("agent_sessions.feed")
PARTITION = "0"
CURSOR_PREFIX = "c1."
ENTRY_ID_RE = re.compile(r"[0-9]{1,20}-[0-9]{1,20}")
POSITIONS_RE = re.compile(r"([0-9]{1,5}):([0-9]{1,20}-[0-9]{1,20})(?:,[0-9]{1,5}:[0-9]{1,20}-[0-9]{1,20})*")
STREAM_RETRY_S = 5  # Retry-After of a stream refused for SSE_MAX_PER_KEY
STREAM_ID_PART_MAX = 2**64 - 1  # each part of a stream entry id is an unsigned 64-bit integer
EVENT_TYPES = TYPES


def encode_cursor(entry_id: str) -> str:
    raw = f"{PARTITION}:{entry_id}".encode()
    return CURSOR_PREFIX + base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The entry id a cursor names; ``InvalidRequest`` for anything this API did not hand out."""
    bad = InvalidRequest.for_fields({"after": "not a cursor this API returned"})
    if not cursor.startswith(CURSOR_PREFIX) or len(cursor) > 200:
        raise bad
    body = cursor[len(CURSOR_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise bad from None
    match = POSITIONS_RE.fullmatch(raw)
    if match is None or match.group(1) != PARTITION or "," in raw:
        raise bad
    ms, seq = (int(part) for part in match.group(2).split("-"))
    if ms > STREAM_ID_PART_MAX or seq > STREAM_ID_PART_MAX or ms == seq == STREAM_ID_PART_MAX:
        raise bad  # not an id Redis can have written (nothing can follow the last one either)
    return match.group(2)


@dataclass(frozen=True)
class EventFilter:
    agents: tuple[str, ...] = ()  # empty: every agent
    session: str = ""  # empty: every session
    types: tuple[str, ...] = ()  # empty: every type

    def matches(self, event: EventDict) -> bool:
        return (
            (not self.agents or event["agent_key"] in self.agents)
            and (not self.session or event["session_key"] == self.session)
            and (not self.types or event["type"] in self.types)
        )


@dataclass(frozen=True)
class Published:
    """One new event as the reader hands it out: decoded and encoded once for every subscriber."""

    entry_id: str
    event: EventDict
    data: bytes  # the event's JSON


async def page(
    events: EventLog, where: EventFilter, after: str, limit: int
) -> tuple[list[tuple[str, EventDict]], str, bool]:
    """(events with their entry ids, the entry id to go on after, whether the log holds more)."""
    got = await events.page(after, limit, where.agents, where.session, where.types)
    items = [(entry_id, event_from_entry(fields)) for entry_id, fields in got.entries]
    return items, got.position, got.has_more


@dataclass(eq=False)
class Subscriber:
    where: EventFilter
    queue: asyncio.Queue[Published]
    overflowed: bool = False  # events were dropped for want of room: it must read the log again
    woken: asyncio.Event = field(default_factory=asyncio.Event)

    def offer(self, item: Published) -> None:
        if self.overflowed or not self.where.matches(item.event):
            return
        try:
            self.queue.put_nowait(item)
        except asyncio.QueueFull:
            self.overflowed = True
        self.woken.set()


class Feed:
    """The one reader of the log in this API process, shared by every subscriber and long poll."""

    def __init__(
        self,
        events: EventLog,
        queue_max: int = 256,
        max_subscribers: int = 1000,
        block_ms: int = 500,
        max_per_key: int = 10,
    ) -> None:
        self.events = events
        self.queue_max = queue_max
        self.max_subscribers = max_subscribers
        self.max_per_key = max_per_key
        self.per_key: dict[str, int] = {}  # open streams of each API key (only keys with one or more)
        self.block_ms = block_ms
        self.subscribers: set[Subscriber] = set()
        self._waiters = 0
        self._news = asyncio.Condition()
        self._reader: asyncio.Task[None] | None = None
        self._starting = asyncio.Lock()
        self.position = "0-0"  # the newest entry the reader has seen
        self.closing = asyncio.Event()

    @contextlib.asynccontextmanager
    async def subscription(self, where: EventFilter, owner: str = "") -> AsyncIterator[Subscriber]:
        """A subscriber for one stream of API key ``owner``: at most ``max_per_key`` at once per key
        (more: 429 for that key alone), at most ``max_subscribers`` in all (more: 503)."""
        open_streams = self.per_key.get(owner, 0)
        if open_streams >= self.max_per_key:
            raise RateLimited(
                STREAM_RETRY_S,
                f"this API key has {open_streams} live streams open on this API process (SSE_MAX_PER_KEY);"
                " close one, or retry later",
                reason="streams",
            )
        if len(self.subscribers) >= self.max_subscribers:
            raise StoreUnavailable("this API process has as many live feeds as it serves (SSE_MAX_SUBSCRIBERS)")
        subscriber = Subscriber(where, asyncio.Queue(self.queue_max))
        self.subscribers.add(subscriber)
        self.per_key[owner] = open_streams + 1
        try:
            await self._start()
            yield subscriber
        finally:
            self.subscribers.discard(subscriber)
            left = self.per_key[owner] - 1
            if left:
                self.per_key[owner] = left
            else:
                del self.per_key[owner]

    async def wait_for_news(self, after: str, seconds: float) -> bool:
        """Until the log holds an entry after ``after`` (True) or ``seconds`` pass (False)."""
        self._waiters += 1
        try:
            await self._start()
            async with self._news:
                try:
                    await asyncio.wait_for(
                        self._news.wait_for(lambda: entry_order(self.position) > entry_order(after)), seconds
                    )
                    return True
                except TimeoutError:
                    return False
        finally:
            self._waiters -= 1

    async def _start(self) -> None:
        # One reader: subscribers that arrive together would otherwise each find none while the first
        # awaits the log's end, and each start one (every one of them reading the log).
        async with self._starting:
            if self._reader is None or self._reader.done():
                self.position = await self.events.end()
                self._reader = asyncio.get_running_loop().create_task(self._read())

    async def _read(self) -> None:
        """Follow the log while anyone listens; stop when nobody does (started again on demand)."""
        while (self.subscribers or self._waiters) and not self.closing.is_set():
            try:
                entries = await self.events.read_after(self.position, self.block_ms, 1000)
            except StoreUnavailable:
                log.warning("the event feed cannot read Redis; retrying")
                await asyncio.sleep(0.5)
                continue
            if not entries:
                continue
            self._publish(entries)
            async with self._news:
                self.position = entries[-1][0]
                self._news.notify_all()

    def _publish(self, entries: list[Entry]) -> None:
        for entry_id, fields in entries:
            try:
                event = event_from_entry(fields)
            except (KeyError, ValueError):
                continue  # a malformed entry (the relay sets it aside from the outbox too)
            item = Published(entry_id, event, orjson.dumps(event))
            for subscriber in self.subscribers:
                subscriber.offer(item)

    async def close(self) -> None:
        self.closing.set()
        for subscriber in self.subscribers:
            subscriber.woken.set()
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader


def sse_message(cursor: str, event_type: str, data: bytes) -> bytes:
    return b"id: " + cursor.encode() + b"\nevent: " + event_type.encode() + b"\ndata: " + data + b"\n\n"


async def list_events(feed: Feed, where: EventFilter, after: str, limit: int, wait: float) -> dict[str, Any]:
    """A page of ``GET /v2/events``. With ``wait``, a page that would be empty at the log's end waits
    up to ``wait`` seconds for a matching event (long poll) and returns as soon as one is committed."""
    deadline = asyncio.get_running_loop().time() + wait
    while True:
        items, position, has_more = await page(feed.events, where, after, limit)
        remaining = deadline - asyncio.get_running_loop().time()
        if items or has_more or remaining <= 0:
            break
        after = position  # examined: no need to examine it again
        await feed.wait_for_news(after, remaining)
    return {
        "events": [event for _, event in items],
        "metadata": {"next_cursor": encode_cursor(position), "has_more": has_more},
    }


async def get_event(events: EventLog, event_id: str, agents: tuple[str, ...]) -> EventDict | None:
    """The event, or None if it is not in the log or belongs to an agent outside ``agents`` (if any)."""
    entry = await events.get(event_id)
    if entry is None:
        return None
    event = event_from_entry(entry[1])
    return event if not agents or event["agent_key"] in agents else None
