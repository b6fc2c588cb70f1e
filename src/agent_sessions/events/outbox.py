"""The outbox streams' reading side: the relay's consumer group, and the pipeline's state for /metrics.

The write scripts append one entry per change to the outbox of the agent's partition
(``lua/_change.lua``); relays read every partition's stream through its consumer group ``relay``,
acknowledge and delete the entries once the broker has the events, and reclaim what a dead relay left
pending (XAUTOCLAIM).
"""

from __future__ import annotations

import time
from collections.abc import Collection, Sequence
from typing import Any, cast

import redis

from agent_sessions.redis.acks import NO_REPLICA_ACKS
from agent_sessions.redis.client import execute_sync, first_error, is_cluster
from agent_sessions.redis.keys import Keys

RELAY_GROUP = "relay"
CLUSTER_POLL_MS = 20  # how often an idle relay looks at every partition of a Redis Cluster
Entry = tuple[str, dict[str, str]]  # (``<partition>/<stream entry id>``, fields)


class Outbox:
    """Every partition's outbox stream, read as one: an entry's id names its partition, so that it is
    acknowledged in its own stream. Each stream is read in order, so one session's events (one
    partition) are relayed in the order they were written."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self.streams = [keys.outbox(tag) for tag in keys.tags()]
        self._partition = {stream: str(i) for i, stream in enumerate(self.streams)}
        self._cluster = is_cluster(client)

    def ensure_group(self) -> None:
        for stream in self.streams:
            try:
                self.redis.xgroup_create(stream, RELAY_GROUP, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise

    def read_new(
        self, consumer: str, count: int, block_ms: int | None, partitions: Collection[int] | None = None
    ) -> list[Entry]:
        """Up to ``count`` new entries of each partition (of ``partitions``: those this relay holds;
        None: all), waiting up to ``block_ms`` for the first."""
        chosen = range(len(self.streams)) if partitions is None else sorted(partitions)
        if not chosen:
            if block_ms:
                time.sleep(block_ms / 1000)
            return []
        if self._cluster:
            return self._read_each(consumer, chosen, count, block_ms)
        streams = {self.streams[i]: ">" for i in chosen}
        # RESP2 reply: [[stream, [(id, fields), ...]], ...] (redis-py's annotation describes RESP3)
        reply: Any = self.redis.xreadgroup(RELAY_GROUP, consumer, streams, count=count, block=block_ms)  # type: ignore[arg-type]
        return [
            (f"{self._partition[stream]}/{entry_id}", fields)
            for stream, entries in reply or []
            for entry_id, fields in entries
        ]

    def _read_each(self, consumer: str, chosen: Sequence[int], count: int, block_ms: int | None) -> list[Entry]:
        """On a Redis Cluster one XREADGROUP reads one slot: one per partition, in one pipeline per node
        (``execute_sync``: a plain pipeline of the node's, several times cheaper per command than the
        cluster pipeline's routing), without blocking; when all are empty, a pause of
        ``CLUSTER_POLL_MS`` (at most ``block_ms``) stands for the wait."""
        streams = [self.streams[i] for i in chosen]
        commands = [("XREADGROUP", "GROUP", RELAY_GROUP, consumer, "COUNT", count, "STREAMS", s, ">") for s in streams]
        replies = first_error(execute_sync(self.redis, commands, streams, NO_REPLICA_ACKS))
        entries = [
            (f"{i}/{entry_id}", fields)
            for i, reply in zip(chosen, replies, strict=True)
            for _, stream_entries in reply or []
            for entry_id, fields in stream_entries
        ]
        if not entries and block_ms:
            time.sleep(min(block_ms, CLUSTER_POLL_MS) / 1000)
        return entries

    def reclaim(
        self, consumer: str, idle_ms: int, count: int, partitions: Collection[int] | None = None
    ) -> list[Entry]:
        """Entries another consumer read and left unacknowledged for ``idle_ms`` (0: all of them, for a
        relay that has just taken the partition over), now this one's."""
        chosen = range(len(self.streams)) if partitions is None else sorted(partitions)
        if not chosen:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for i in chosen:
            pipe.xautoclaim(self.streams[i], RELAY_GROUP, consumer, idle_ms, "0-0", count)
        replies: list[Any] = pipe.execute()
        return [
            (f"{i}/{entry_id}", fields)
            for i, reply in zip(chosen, replies, strict=True)
            for entry_id, fields in reply[1]
            if fields
        ]

    def set_aside(self, fields: dict[str, str]) -> None:
        """Keep a malformed entry in the poison stream (it is then acknowledged like the others)."""
        self.redis.xadd(self.keys.outbox_poison, dict(fields) or {"empty": ""})  # type: ignore[arg-type]

    def ack(self, entry_ids: list[str]) -> None:
        by_stream: dict[str, list[str]] = {}
        for entry_id in entry_ids:
            partition, _, stream_id = entry_id.partition("/")
            by_stream.setdefault(self.streams[int(partition)], []).append(stream_id)
        commands: list[tuple[Any, ...]] = []
        for stream, ids in by_stream.items():  # each stream's XACK and XDEL: idempotent
            commands += [("XACK", stream, RELAY_GROUP, *ids), ("XDEL", stream, *ids)]
        first_error(execute_sync(self.redis, commands, [command[1] for command in commands], NO_REPLICA_ACKS))

    def backlog(self) -> int:
        pipe = self.redis.pipeline(transaction=False)
        for stream in self.streams:
            pipe.xlen(stream)
        return sum(pipe.execute())


def pipeline_snapshot(client: redis.Redis, keys: Keys) -> dict[str, Any]:
    """The pipeline's state in two round trips: outbox backlog (every partition's), entries pending in
    the group, the age of the oldest entry, dead letters (every endpoint's, and the previous version's),
    and the workers' counters (``counters``)."""
    streams = [keys.outbox(tag) for tag in keys.tags()]
    endpoints = cast(list[str], client.zrange(keys.webhook_endpoints, 0, -1))
    pipe = client.pipeline(transaction=False)
    pipe.hgetall(keys.counters)
    pipe.zcard(keys.dead_letters)
    for endpoint in endpoints:
        pipe.zcard(keys.deliveries(endpoint)["dead"])  # its log of dead letters
    for stream in streams:
        pipe.xlen(stream)
        pipe.xrange(stream, count=1)
        pipe.xinfo_groups(stream)
    counters, dead, *replies = pipe.execute(raise_on_error=False)
    dead += sum(replies[: len(endpoints)])
    per_stream = replies[len(endpoints) :]
    backlog, pending, oldest_ms = 0, 0, None
    for length, oldest, groups in zip(per_stream[::3], per_stream[1::3], per_stream[2::3], strict=True):
        if isinstance(length, Exception) or isinstance(oldest, Exception):
            continue
        backlog += length
        if oldest:
            at = int(oldest[0][0].split("-")[0])
            oldest_ms = at if oldest_ms is None else min(oldest_ms, at)
        if not isinstance(groups, Exception):  # no stream yet
            pending += sum(int(g["pending"]) for g in groups if g["name"] == RELAY_GROUP)
    lag = max(0.0, time.time() - oldest_ms / 1000) if oldest_ms is not None else 0.0
    return {"backlog": backlog, "pending": pending, "lag": lag, "dead": dead, "counters": counters}


class Counters:
    """The workers' counters for /metrics: ``<actor>:processed|failed``, ``webhooks:<outcome>``."""

    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def add(self, name: str, amount: int) -> None:
        self.redis.hincrby(self.keys.counters, name, amount)
