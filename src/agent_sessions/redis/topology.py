"""What the store is, checked when a process starts: one Redis primary (with or without replicas) or a
Redis Cluster, and what each cannot do is said out loud.

- One primary: missing replicas for ``REDIS_MIN_REPLICA_ACKS`` are logged; a replica as ``REDIS_URL``
  too (every write would fail until it is promoted).
- A Redis Cluster (the client was made for one: ``client.async_client``): every script touches one
  slot, so the same code runs; ``REDIS_MIN_REPLICA_ACKS`` waits on each primary a write went to
  (``acks.ReplicaAcks``). Its replicas are not counted here: each primary has its own, and a missing
  one shows as the 503s of the writes that wait for it.

A Redis that cannot be reached is not an error here: processes start while Redis is down and answer
503 until it returns, so the check is made once, when it can be (the layout check asks again whether
the node is a cluster before the API's first request: ``layout.Guard``).
"""

from __future__ import annotations

import logging
from typing import Any

import redis
import redis.asyncio as aioredis

from agent_sessions.errors import ConfigError
from agent_sessions.redis.client import is_cluster
from agent_sessions.redis.outages import OUTAGE_ERRORS

log = logging.getLogger(__name__)

CLUSTER_UNSEEN = (
    "REDIS_URL is a Redis Cluster node, which this process could not tell when it started (Redis was "
    "unreachable): restart it"
)


def judge(cluster: dict[str, Any], replication: dict[str, Any], min_replica_acks: int) -> list[str]:
    """``INFO cluster`` and ``INFO replication`` of one primary -> warnings; raises ``ConfigError``
    for a cluster node (the client made for one node would be wrong for it)."""
    if int(cluster.get("cluster_enabled", 0)):
        raise ConfigError(CLUSTER_UNSEEN)
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
        _on_cluster(min_replica_acks)
        return
    try:
        replies = _ask(client.pipeline(transaction=False)).execute()
    except OUTAGE_ERRORS:
        replies = None
    _conclude(replies, min_replica_acks)


async def check_async(client: aioredis.Redis, min_replica_acks: int) -> None:
    """The API's check (see ``judge``)."""
    if is_cluster(client):
        _on_cluster(min_replica_acks)
        return
    try:
        replies = await _ask(client.pipeline(transaction=False)).execute()
    except OUTAGE_ERRORS:
        replies = None
    _conclude(replies, min_replica_acks)


def _on_cluster(min_replica_acks: int) -> None:
    log.info("REDIS_URL is a Redis Cluster node: using the cluster client")
    if min_replica_acks:
        log.info("each write waits for %d replica(s) of the primary that holds it", min_replica_acks)


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
