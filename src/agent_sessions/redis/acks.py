"""``REDIS_MIN_REPLICA_ACKS``: how a write waits for replicas (``ReplicaAcks``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_sessions.config import Settings
from agent_sessions.errors import ReplicasBehind


@dataclass(frozen=True)
class ReplicaAcks:
    """``REDIS_MIN_REPLICA_ACKS``: a write counts as done only once ``count`` replicas have it. Each
    pipeline that carries writes ends with ``WAIT count timeout_ms``, in the same round trip; WAIT waits
    for every write its connection made before it, so one WAIT covers a whole pipeline on one node. On
    a Redis Cluster a batch is sent as one share per node, each on one connection of that node, in
    order, so each node whose keys it writes gets a WAIT of its own at the end of its share
    (``cluster.AsyncRedisCluster.run``, ``cluster.SyncRedisCluster.run``). Fewer replicas in time
    raise ``ReplicasBehind`` (a 503): the writes did apply on the primary, and may be lost if it fails
    now; an Idempotency-Key makes the client's retry safe.

    Replication is asynchronous otherwise: a primary that dies right after answering can take the
    answered write with it, since its replicas are promoted without it."""

    count: int = 0
    timeout_ms: int = 0

    @classmethod
    def of(cls, settings: Settings) -> ReplicaAcks:
        """What every client that writes for a caller waits for: the API's, the workers' (a report or an
        escalation is written before its message is acknowledged), the CLI's. Not the webhook delivery
        loop's: a delivery result a failover forgets is a delivery made again, as at-least-once allows."""
        return cls(settings.redis_min_replica_acks, settings.replica_ack_timeout_ms)

    def command(self) -> tuple[Any, ...] | None:
        """The WAIT that ends a pipeline of writes (None when no acks are asked for)."""
        return ("WAIT", self.count, self.timeout_ms) if self.count else None

    def add(self, pipe: Any) -> int:
        """Ends ``pipe`` (a pipeline of one node) with the WAIT; returns how many replies ``check`` takes
        off (none when no acks are asked for)."""
        if not self.count:
            return 0
        pipe.execute_command("WAIT", self.count, self.timeout_ms)
        return 1

    def check(self, results: list[Any], waits: int) -> list[Any]:
        """``results`` of a pipeline ended by ``add``, without the WAIT's reply (taken off the list)."""
        if not waits:
            return results
        behind = self.shortfall(results.pop())
        if behind is not None:
            raise behind
        return results

    def shortfall(self, acked: Any) -> Exception | None:
        """What a WAIT's reply means for the writes before it: nothing, or the error to answer them with."""
        if isinstance(acked, Exception):
            return acked
        if int(acked) < self.count:
            return ReplicasBehind(f"the write reached {acked} of {self.count} replicas in time; it may have applied")
        return None


NO_REPLICA_ACKS = ReplicaAcks()
