"""The outbox stream's reading side: the relay's consumer group, and the pipeline's state for /metrics.

The write scripts append one entry per change (``lua/_change.lua``); relays read them through the
consumer group ``relay``, acknowledge and delete them once the broker has the events, and reclaim
what a dead relay left pending (XAUTOCLAIM).
"""

from __future__ import annotations

import time
from typing import Any, cast

import redis

from agent_sessions.redis.keys import KEYS, Keys

RELAY_GROUP = "relay"
Entry = tuple[str, dict[str, str]]


class Outbox:
    def __init__(self, client: redis.Redis, keys: Keys = KEYS) -> None:
        self.redis = client
        self.keys = keys

    def ensure_group(self) -> None:
        try:
            self.redis.xgroup_create(self.keys.outbox, RELAY_GROUP, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise

    def read_new(self, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
        # RESP2 reply: [[stream, [(id, fields), ...]]] (redis-py's annotation describes RESP3)
        reply: Any = self.redis.xreadgroup(RELAY_GROUP, consumer, {self.keys.outbox: ">"}, count=count, block=block_ms)
        if not reply:
            return []
        return cast(list[Entry], reply[0][1])

    def reclaim(self, consumer: str, idle_ms: int, count: int) -> list[Entry]:
        """Entries another consumer read and left unacknowledged for ``idle_ms``, now this one's."""
        reply: Any = self.redis.xautoclaim(self.keys.outbox, RELAY_GROUP, consumer, idle_ms, "0-0", count)
        return [(entry_id, fields) for entry_id, fields in reply[1] if fields]

    def set_aside(self, fields: dict[str, str]) -> None:
        """Keep a malformed entry in the poison stream (it is then acknowledged like the others)."""
        self.redis.xadd(self.keys.outbox_poison, dict(fields) or {"empty": ""})  # type: ignore[arg-type]

    def ack(self, entry_ids: list[str]) -> None:
        if entry_ids:
            pipe = self.redis.pipeline(transaction=True)
            pipe.xack(self.keys.outbox, RELAY_GROUP, *entry_ids)
            pipe.xdel(self.keys.outbox, *entry_ids)
            pipe.execute()

    def backlog(self) -> int:
        return int(self.redis.xlen(self.keys.outbox))


def pipeline_snapshot(client: redis.Redis, keys: Keys = KEYS) -> dict[str, Any]:
    """The pipeline's state in one round trip: outbox backlog, entries pending in the group, the age
    of the oldest entry, dead letters, and the workers' counters (``counters``)."""
    pipe = client.pipeline(transaction=False)
    pipe.xlen(keys.outbox)
    pipe.xrange(keys.outbox, count=1)
    pipe.hgetall(keys.counters)
    pipe.zcard(keys.dead_letters)
    pipe.xinfo_groups(keys.outbox)
    backlog, oldest, counters, dead, groups = pipe.execute(raise_on_error=False)
    if isinstance(groups, Exception):  # no stream yet
        groups = []
    pending = sum(int(g["pending"]) for g in groups if g["name"] == RELAY_GROUP)
    lag = max(0.0, time.time() - int(oldest[0][0].split("-")[0]) / 1000) if oldest else 0.0
    dead += int(counters.get("webhooks:dead", 0))  # dead + the previous version's dead letters
    return {"backlog": backlog, "pending": pending, "lag": lag, "dead": dead, "counters": counters}


class Counters:
    """The workers' counters for /metrics: ``<actor>:processed|failed``, ``webhooks:<outcome>``."""

    def __init__(self, client: redis.Redis, keys: Keys = KEYS) -> None:
        self.redis = client
        self.keys = keys

    def add(self, name: str, amount: int) -> None:
        self.redis.hincrby(self.keys.counters, name, amount)
