"""Relays share the partitions' outboxes through leases: each partition is read by one relay at a
time, so each session's events are relayed in order, and any number of relays may start and stop.

Every ``lease_ms / 3`` a relay says it is alive (``relays``, a sorted set scored by when that stops
being true), counts the live relays, renews the leases it holds (``lua/relay_lease.lua``), gives up
those above its fair share (``PARTITIONS`` / live relays, rounded up) and takes free ones up to it,
starting at a place its name picks so that relays starting together do not race for the same
partitions. A relay that dies keeps its leases until they expire: within ``lease_ms``
(``RELAY_CLAIM_IDLE_MS``) others take its partitions, and the entries it had read and not
acknowledged with them, which they relay first (``Relay``: ``Outbox.reclaim`` with no idle time). A
relay that stalls longer than that mid-batch may relay that batch after its successor did: consumers
are idempotent, and such a batch can arrive late.
"""

from __future__ import annotations

import math
import time
import zlib

import redis

from agent_sessions.events.lua import RELAY_LEASE
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.scripts import Call, SyncScript


class Leases:
    def __init__(self, client: redis.Redis, keys: Keys, name: str, lease_ms: int) -> None:
        self.redis = client
        self.name = name
        self.lease_ms = lease_ms
        self.keys = keys
        self.partitions = keys.partitions
        self.owned: set[int] = set()
        self._lease = SyncScript(client, RELAY_LEASE)
        self._next = 0.0

    def due(self) -> bool:
        return time.monotonic() >= self._next

    def refresh(self, keep_all: bool = False) -> set[int]:
        """Renew, balance and take leases; returns the partitions newly taken. ``keep_all``: give up
        none (the relay has a batch of them in hand)."""
        self._next = time.monotonic() + self.lease_ms / 3000
        seconds, micros = self.redis.time()
        now = seconds * 1000 + micros // 1000
        pipe = self.redis.pipeline(transaction=False)
        pipe.zadd(self.keys.relays, {self.name: now + self.lease_ms})
        pipe.zremrangebyscore(self.keys.relays, "-inf", now)
        pipe.zcard(self.keys.relays)
        live = max(1, int(pipe.execute()[2]))
        fair = math.ceil(self.partitions / live)
        held = sorted(self.owned)
        renewed = self._lease.many([self._call(p, "take") for p in held]) if held else []
        self.owned = {p for p, ok in zip(held, renewed, strict=True) if int(ok)}
        if len(self.owned) > fair and not keep_all:
            extra = sorted(self.owned)[fair:]
            self._lease.many([self._call(p, "drop") for p in extra])
            self.owned -= set(extra)
        taken: set[int] = set()
        start = zlib.crc32(self.name.encode()) % self.partitions
        for i in range(self.partitions):
            if len(self.owned) >= fair:
                break
            partition = (start + i) % self.partitions
            if partition not in self.owned and int(self._lease.many([self._call(partition, "take")])[0]):
                self.owned.add(partition)
                taken.add(partition)
        return taken

    def release(self) -> None:
        """Give every lease back (a relay stopping): others take them at their next refresh."""
        if self.owned:
            self._lease.many([self._call(p, "drop") for p in sorted(self.owned)])
        self.owned = set()
        self.redis.zrem(self.keys.relays, self.name)

    def _call(self, partition: int, op: str) -> Call:
        lease = self.keys.relay_lease(self.keys.tags()[partition])
        return self._lease.call({"lease": lease}, {"op": op, "relay": self.name, "lease_ms": self.lease_ms})
