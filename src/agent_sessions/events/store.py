"""The event log: every event as the write scripts emitted it (``lua/_change.lua``), in commit order,
retained by age and count. The API reads it (``EventLog``); the workers trim it (``Retention``).

Entry ids are Redis stream ids, assigned when the write commits: an entry written later always has a
larger id, so reading on from a position never misses a commit and never sees one twice.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from typing import Any, cast

import redis
import redis.asyncio as aioredis

from agent_sessions.errors import CursorExpired
from agent_sessions.events import lua
from agent_sessions.events.lua import EventsAppendKeys, EventsTrimKeys
from agent_sessions.redis.client import Batches
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.outages import outage_as_unavailable
from agent_sessions.redis.scripts import Script, SyncScript
from agent_sessions.redis.steps import run_steps

log = logging.getLogger("agent_sessions.retention")
Entry = tuple[str, dict[str, str]]
CHUNK = 200  # entries per XRANGE inside events_page.lua


@dataclass(frozen=True)
class LogPage:
    entries: list[Entry]
    position: str  # go on after it: the last entry examined (or the start, when there was none)
    has_more: bool  # entries exist after position


def entry_order(entry_id: str) -> tuple[int, int]:
    """A stream entry id ("ms-seq") as what orders it."""
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _entry(raw: list[Any]) -> Entry:
    flat = raw[1]
    return raw[0], dict(zip(flat[::2], flat[1::2], strict=True))


class EventLog:
    def __init__(
        self, client: aioredis.Redis, keys: Keys, batches: Batches | None = None, scan_max: int = 5000
    ) -> None:
        self.redis = client
        self.keys = keys
        self.scan_max = scan_max
        self._page = Script(batches or Batches(client), lua.EVENTS_PAGE)

    async def page(
        self, after: str, limit: int, agents: tuple[str, ...] = (), session: str = "", types: tuple[str, ...] = ()
    ) -> LogPage:
        """Up to ``limit`` entries after entry id ``after`` ("": the oldest retained) that match the
        filters, examining at most ``scan_max`` entries. Raises ``CursorExpired`` when entries after
        ``after`` were trimmed."""
        reply = await self._page(
            {"log": self.keys.events, "trimmed": self.keys.events_trimmed},
            {
                "after": after,
                "limit": limit,
                "scan_max": self.scan_max,
                "agents": ",".join(agents),
                "session": session,
                "types": ",".join(types),
                "chunk": CHUNK,
            },
        )
        if reply[0] == "cursor_expired":
            raise CursorExpired()
        return LogPage([_entry(raw) for raw in reply[3:]], reply[1], reply[2] == 1)

    async def check(self, after: str) -> None:
        """Raise ``CursorExpired`` if entries after ``after`` were trimmed (as ``page`` would)."""
        async with outage_as_unavailable():
            trimmed = cast(str | None, await self.redis.get(self.keys.events_trimmed))
        if trimmed is not None and entry_order(after) < entry_order(trimmed):
            raise CursorExpired()

    async def get(self, event_id: str) -> Entry | None:
        async with outage_as_unavailable():
            entry_id = await self.redis.hget(self.keys.event_ids, event_id)
            if entry_id is None:
                return None
            found = await self.redis.xrange(self.keys.events, entry_id, entry_id)
        return cast(Entry, found[0]) if found else None

    async def oldest(self) -> str | None:
        """When the oldest retained event was written (ms), or None for an empty log."""
        async with outage_as_unavailable():
            first = await self.redis.xrange(self.keys.events, count=1)
        return cast(str, first[0][0]).split("-")[0] if first else None

    async def end(self) -> str:
        """The newest entry's id ("0-0" for an empty log): reading after it sees only what comes next."""
        async with outage_as_unavailable():
            newest = await self.redis.xrevrange(self.keys.events, count=1)
        return cast(str, newest[0][0]) if newest else "0-0"

    async def read_after(self, entry_id: str, block_ms: int, count: int) -> list[Entry]:
        """The entries after ``entry_id``, waiting up to ``block_ms`` for one when there are none."""
        async with outage_as_unavailable():
            reply: Any = await self.redis.xread({self.keys.events: entry_id}, count=count, block=block_ms)
        return cast(list[Entry], reply[0][1]) if reply else []


class LogWriter:
    """The relay's side of the log: appends the entries it relays (``lua/events_append.lua``), in
    calls of at most ``chunk`` entries, each atomic and idempotent on the event id."""

    def __init__(self, client: redis.Redis, keys: Keys, chunk: int = 500) -> None:
        self.keys = keys
        self.chunk = chunk
        self._append = SyncScript(client, lua.EVENTS_APPEND)

    def append(self, entries: list[dict[str, str]]) -> int:
        """Returns how many were new to the log."""
        keys: EventsAppendKeys = {"log": self.keys.events, "ids": self.keys.event_ids}
        calls = []
        for start in range(0, len(entries), self.chunk):
            args: list[str | int] = []
            for fields in entries[start : start + self.chunk]:
                args.append(len(fields) * 2)
                args.extend(item for pair in fields.items() for item in pair)
            calls.append(self._append.call(keys, {}, more_args=args))
        return sum(int(n) for n in self._append.many(calls)) if calls else 0


class Retention:
    """Keeps the log within ``retention_s`` seconds and ``max_events`` entries (the workers run it)."""

    def __init__(self, client: redis.Redis, keys: Keys, retention_s: float, max_events: int, batch: int = 1000) -> None:
        self.redis = client
        self.retention_s = retention_s
        self.max_events = max_events
        self.batch = batch
        self.keys = keys
        self._trim = SyncScript(client, lua.EVENTS_TRIM)

    def step(self) -> int:
        """Drop at most ``batch`` entries that are out of bounds; returns how many were dropped."""
        seconds, micros = self.redis.time()
        cutoff_ms = int((seconds + micros / 1e6 - self.retention_s) * 1000)
        keys: EventsTrimKeys = {
            "log": self.keys.events,
            "ids": self.keys.event_ids,
            "trimmed": self.keys.events_trimmed,
        }
        return int(self._trim(keys, {"cutoff_ms": cutoff_ms, "max_events": self.max_events, "batch": self.batch}))

    def run(self, stop: threading.Event, idle_s: float = 1.0) -> None:
        """Trim until ``stop`` is set: step after step while there is work, every ``idle_s`` when not."""
        run_steps(lambda: self.step() == self.batch, stop, idle_s, "event log retention")
