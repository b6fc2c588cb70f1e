"""What the store is, checked when a process starts: a Redis Cluster is refused, and missing replicas
for ``REDIS_MIN_REPLICA_ACKS`` are said out loud.

This version keeps every agent's keys, the outbox and the event log on one Redis primary (with or
without replicas): its scripts write keys that a cluster would put in different slots. Pointed at a
cluster node, it would answer CROSSSLOT errors request by request; it refuses to start instead.

A Redis that cannot be reached is not an error here: processes start while Redis is down and answer
503 until it returns, so the check is made once, when it can be.
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import redis.asyncio as aioredis

from agent_sessions.errors import ConfigError
from agent_sessions.redis.client import OUTAGE_ERRORS, is_cluster

log = logging.getLogger(__name__)

CLUSTER_REFUSED = (
    "REDIS_URL points at a Redis Cluster node (cluster_enabled:1); this version needs a standalone Redis "
    "primary (replicas and failover by Sentinel or a managed service are fine)"
)


def judge(cluster: dict[str, Any], replication: dict[str, Any], min_replica_acks: int) -> list[str]:
    """``INFO cluster`` and ``INFO replication`` -> warnings; raises ``ConfigError`` for a cluster."""
    if int(cluster.get("cluster_enabled", 0)):
        raise ConfigError(CLUSTER_REFUSED)
    warnings = []
    if replication.get("role") == "slave":
        warnings.append("REDIS_URL points at a replica: every write will fail until it is a primary")
    replicas = int(replication.get("connected_slaves", 0))
    if min_replica_acks > replicas:
        warnings.append(
            f"REDIS_MIN_REPLICA_ACKS is {min_replica_acks} but the primary has {replicas} replica(s) connected:"
            " writes are answered 503 until enough replicas are"
        )
    return warnings


def check(client: redis.Redis, min_replica_acks: int) -> None:
    """The workers' check (see ``judge``)."""
    if is_cluster(client):  # INFO said so when the client was made
        raise ConfigError(CLUSTER_REFUSED)
    try:
        replies = _ask(client.pipeline(transaction=False)).execute()
    except OUTAGE_ERRORS:
        replies = None
    _conclude(replies, min_replica_acks)


async def check_async(client: aioredis.Redis, min_replica_acks: int) -> None:
    """The API's check (see ``judge``)."""
    if is_cluster(client):
        raise ConfigError(CLUSTER_REFUSED)
    try:
        replies = await _ask(client.pipeline(transaction=False)).execute()
    except OUTAGE_ERRORS:
        replies = None
    _conclude(replies, min_replica_acks)


def _ask(pipe: Any) -> Any:
    pipe.info("cluster")
    pipe.info("replication")
    return pipe


def _conclude(replies: list[Any] | None, min_replica_acks: int) -> None:
    if replies is None:
        log.warning("redis unreachable at start; its topology is not checked")
        return
    cluster, replication = replies
    for warning in judge(cluster, replication, min_replica_acks):
        log.warning("%s", warning)
