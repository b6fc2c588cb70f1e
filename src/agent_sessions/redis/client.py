"""Redis clients with one explicit policy, auto-pipelining for the API, and outages as one domain error.

Retries are off: our write scripts are not idempotent (each bumps a version), and redis-py's default
retries a command after a timeout, which could run a script twice for one request. A failed call
becomes ``StoreUnavailable`` (HTTP 503 with ``Retry-After``) and the client decides whether to retry.
Timeouts are short so that an unreachable Redis is a fast answer, not a hung request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterPipeline as AsyncClusterPipeline
from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as SyncCluster
from redis.exceptions import AskError, DataError, OutOfMemoryError, RedisClusterException, ResponseError, TryAgainError
from redis.maint_notifications import MaintNotificationsConfig

from agent_sessions.config import Settings
from agent_sessions.errors import InsufficientStorage, ReplicasBehind, StoreUnavailable

OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)
# A cluster node's answer that a command's slot is served elsewhere (MovedError is an AskError) or is
# moving: the command did not run.
REDIRECTIONS = (AskError, TryAgainError)
SLOT_MOVED = "the key's slot is served by another node now (a failover or a resharding); retry"


@dataclass(frozen=True)
class ReplicaAcks:
    """``REDIS_MIN_REPLICA_ACKS``: a write counts as done only once ``count`` replicas have it. Each
    pipeline that carries writes ends with ``WAIT count timeout_ms``, in the same round trip; WAIT waits
    for every write its connection made before it, so one WAIT covers a whole pipeline on one node. On
    a Redis Cluster a pipeline is sent as one share per node, each on one connection of that node, in
    order: so each node whose keys the pipeline writes gets a WAIT of its own at the end of its share
    (``add``). Fewer replicas in time raise ``ReplicasBehind`` (a 503): the writes did apply on the
    primary, and may be lost if it fails now; an Idempotency-Key makes the client's retry safe.

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


class AsyncRedis(aioredis.Redis):
    """An asyncio client that carries the store's replica acks to whatever pipelines writes on it."""

    replica_acks: ReplicaAcks = NO_REPLICA_ACKS


class SyncRedis(redis.Redis):
    """A synchronous client that carries the store's replica acks (see ``AsyncRedis``)."""

    replica_acks: ReplicaAcks = NO_REPLICA_ACKS


class AsyncRedisCluster(AsyncCluster):
    """The asyncio client of a Redis Cluster (see ``async_client``). After a pipeline meets a node it
    cannot reach, or a slot served elsewhere, the slot map is read again before the next pipeline:
    redis-py does that after a failed single command but not after a failed pipeline (with retries
    off, a client whose primary had failed over kept sending to the dead node)."""

    replica_acks: ReplicaAcks = NO_REPLICA_ACKS
    _stale = False

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> AsyncClusterPipeline:
        if shard_hint:  # what redis-py's own refuses
            return super().pipeline(transaction, shard_hint)
        return _RefreshingPipeline(self, transaction)  # type: ignore[abstract]

    def topology_changed(self) -> None:
        self._stale = True

    async def refresh(self) -> None:
        """Reads the slot map again if a pipeline found it wrong (one read for concurrent callers)."""
        if self._stale:
            self._stale = False
            try:
                await self.nodes_manager.initialize()
            except BaseException:
                self._stale = True
                raise

    async def run(
        self, commands: Sequence[tuple[Any, ...]], keys: Sequence[Any], confirmed: Sequence[bool], acks: ReplicaAcks
    ) -> list[Any]:
        """``commands`` (``commands[i]`` on the slot of ``keys[i]``), one pipeline per node on one of its
        connections, the nodes in parallel; each reply or error in its place. Where ``confirmed[i]``,
        the node's share ends with the WAIT of ``acks``, and a write its replicas did not confirm in time
        answers ``ReplicasBehind``. This is what redis-py's cluster pipeline does, less its per-command
        routing (each key's slot computed, a policy looked up: a fifth of the API's CPU per PATCH) and
        less its redirections: a command sent to a node that no longer serves its slot did not run, and
        answers ``StoreUnavailable`` (following it would send it again on another connection, where no
        WAIT follows it). A node that fails or redirects has the slot map read again before the next call."""
        await self.initialize()  # nothing once done
        await self.refresh()
        shares: dict[str, tuple[Any, list[PipelineCommand], list[bool]]] = {}
        try:
            for i, key in enumerate(keys):
                node = self.get_node_from_key(key)
                share = shares.get(cast(Any, node).name) or shares.setdefault(cast(Any, node).name, (node, [], []))
                share[1].append(PipelineCommand(i, *commands[i]))
                share[2].append(confirmed[i])
        except RedisClusterException as exc:  # a slot no node serves: the cluster is failing over
            self.topology_changed()
            raise StoreUnavailable(SLOT_MOVED) from exc
        waiting = bool(acks.count)
        for _, share_commands, share_confirmed in shares.values():
            if waiting and any(share_confirmed):
                share_commands.append(PipelineCommand(-1, "WAIT", acks.count, acks.timeout_ms))
        if len(shares) == 1:
            await self._send_share(*next(iter(shares.values()))[:2])
        else:
            await asyncio.gather(
                *(self._send_share(node, share_commands) for node, share_commands, _ in shares.values())
            )
        results: list[Any] = [None] * len(keys)
        for _, share_commands, share_confirmed in shares.values():
            behind = acks.shortfall(share_commands.pop().result) if share_commands[-1].position < 0 else None
            for command, confirm in zip(share_commands, share_confirmed, strict=True):
                result = command.result
                if isinstance(result, REDIRECTIONS):
                    result = StoreUnavailable(SLOT_MOVED)
                elif behind is not None and confirm and not isinstance(result, Exception):
                    result = behind
                results[command.position] = result
        return results

    async def _send_share(self, node: Any, commands: list[PipelineCommand]) -> None:
        try:
            await node.execute_pipeline(commands)
        except Exception as exc:  # the node could not be reached: every command of its share fails
            for command in commands:
                command.result = exc
        if any(isinstance(command.result, (*OUTAGE_ERRORS, *REDIRECTIONS)) for command in commands):
            self.topology_changed()


class _RefreshingPipeline(AsyncClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = cast(AsyncRedisCluster, self.cluster_client)
        try:
            await client.refresh()
            results = await super().execute(raise_on_error, allow_redirections)
        except (*OUTAGE_ERRORS, *REDIRECTIONS):
            client.topology_changed()
            raise
        if any(isinstance(result, (*OUTAGE_ERRORS, *REDIRECTIONS)) for result in results):
            client.topology_changed()
        return results


class SyncRedisCluster(SyncCluster):
    """The synchronous client of a Redis Cluster (see ``sync_client``). redis-py's own reads the slot
    map again when it cannot reach a node."""

    replica_acks: ReplicaAcks = NO_REPLICA_ACKS


WITH_ACKS = (AsyncRedis, SyncRedis, AsyncRedisCluster, SyncRedisCluster)


def replica_acks(client: Any) -> ReplicaAcks:
    """The acks a write on ``client`` needs (none for a client made elsewhere, as tests do)."""
    return client.replica_acks if isinstance(client, WITH_ACKS) else NO_REPLICA_ACKS


def is_cluster(client: Any) -> bool:
    return isinstance(client, AsyncCluster | SyncCluster)


async def execute_async(
    client: aioredis.Redis, commands: Sequence[tuple[Any, ...]], keys: Sequence[Any], acks: ReplicaAcks
) -> list[Any]:
    """``commands`` (``commands[i]`` on the slot of ``keys[i]``), writes a caller is answered for, in one
    pipeline (one per node on a cluster: ``AsyncRedisCluster.run``) ended by the WAIT of ``acks``; each
    reply or error in its place, ``ReplicasBehind`` among them when the replicas fell short."""
    if isinstance(client, AsyncRedisCluster):
        return await client.run(commands, keys, [True] * len(commands), acks)
    assert len(keys) == len(commands)
    pipe = client.pipeline(transaction=False)
    for command in commands:
        pipe.execute_command(*command)
    waits = acks.add(pipe)
    results = list(await pipe.execute(raise_on_error=False))
    if waits:
        behind = acks.shortfall(results.pop())
        if behind is not None:
            results = [result if isinstance(result, Exception) else behind for result in results]
    return results


def execute_sync(
    client: redis.Redis, commands: Sequence[tuple[Any, ...]], keys: Sequence[Any], acks: ReplicaAcks
) -> list[Any]:
    """``commands`` (``commands[i]`` on the slot of ``keys[i]``) in one pipeline per node, each ended by
    the WAIT of ``acks`` when asked; each reply or error in its place; ``ReplicasBehind`` raised.

    On a cluster each node's share goes through a plain client of that node (``get_redis_connection``):
    its own pipeline on one connection, so the WAIT follows the node's writes, and nothing is sent
    twice (redis-py's cluster pipeline sends again, alone, a command whose reply timed out, which could
    run a script twice). A redirected command did not run: ``StoreUnavailable``, and the map is re-read."""
    if not is_cluster(client):
        pipe = client.pipeline(transaction=False)
        for command in commands:
            pipe.execute_command(*command)  # type: ignore[no-untyped-call]
        waits = acks.add(pipe)
        return acks.check(pipe.execute(raise_on_error=False), waits)
    cluster = cast(SyncRedisCluster, client)
    shares: dict[str, tuple[Any, list[int]]] = {}
    for i, key in enumerate(keys):
        node = cluster.get_node_from_key(key)  # type: ignore[no-untyped-call]
        shares.setdefault(node.name, (node, []))[1].append(i)
    results: list[Any] = [None] * len(commands)
    try:
        for node, positions in shares.values():
            pipe = cluster.get_redis_connection(node).pipeline(transaction=False)
            for i in positions:
                pipe.execute_command(*commands[i])  # type: ignore[no-untyped-call]
            waits = acks.add(pipe)
            for i, result in zip(positions, acks.check(pipe.execute(raise_on_error=False), waits), strict=True):
                results[i] = result
    except OUTAGE_ERRORS:
        _reread(cluster)
        raise
    results = _unredirected(results)
    if any(isinstance(result, StoreUnavailable) for result in results):
        _reread(cluster)
    return results


def _reread(cluster: SyncRedisCluster) -> None:
    with suppress(*OUTAGE_ERRORS):  # no node answers: the next call tries again
        cluster.nodes_manager.initialize()


def _unredirected(results: list[Any]) -> list[Any]:
    return [StoreUnavailable(SLOT_MOVED) if isinstance(result, REDIRECTIONS) else result for result in results]


def first_error(results: list[Any]) -> list[Any]:
    """``results``, or the first error among them raised (what ``raise_on_error`` would have done)."""
    for result in results:
        if isinstance(result, Exception):
            raise result
    return results


def cluster_enabled(url: str, timeout: float) -> bool | None:
    """Whether the node at ``url`` is in cluster mode (``INFO cluster``); None when it cannot be reached
    (the processes start while Redis is down: the layout check asks again before any key is used)."""
    try:
        conn = redis.Redis.from_url(
            url, socket_timeout=timeout, socket_connect_timeout=timeout, retry=redis.retry.Retry(NoBackoff(), 0)
        )
        try:
            return bool(int(conn.info("cluster").get("cluster_enabled", 0)))
        finally:
            conn.close()
    except OUTAGE_ERRORS:
        return None


def _cluster_options(timeout: float) -> dict[str, Any]:
    return {"decode_responses": True, "socket_timeout": timeout, "socket_connect_timeout": timeout}


def async_client(
    url: str, timeout: float, pool_size: int = 64, acks: ReplicaAcks = NO_REPLICA_ACKS, cluster: bool | None = None
) -> aioredis.Redis:
    """A client whose pool holds at most ``pool_size`` connections; a request that finds them all busy
    waits for one up to ``timeout`` seconds (redis-py's default pool raises at once instead, and that
    was a 503 with Redis healthy). A pooled connection that Redis closed (a restart) is replaced before
    a command is sent on it, so no command is lost to a stale connection; a command whose reply was
    lost is never sent again.

    A Redis Cluster node (``cluster``, or asked with ``INFO cluster`` when None) gets redis-py's cluster
    client, with the same timeouts and no retries (it follows MOVED and ASK redirections, which run
    nothing twice), at most ``pool_size`` connections per node."""
    if cluster is None:
        cluster = bool(cluster_enabled(url, timeout))
    if cluster:
        options = _cluster_options(timeout)
        node_client = AsyncRedisCluster.from_url(
            url, max_connections=pool_size, retry=aioredis.retry.Retry(NoBackoff(), 0), **options
        )
        cast(AsyncRedisCluster, node_client).replica_acks = acks
        # Our packing for the nodes' connections too (no connection exists yet): the nodes found later
        # are made from the manager's arguments, the start-up nodes already were.
        manager = node_client.nodes_manager
        manager.connection_kwargs["connection_class"] = hiredis_packing(manager.connection_kwargs["connection_class"])
        for node in manager.startup_nodes.values():
            node.connection_class = manager.connection_kwargs["connection_class"]
        # Typed as the single-node client: it answers every command the store sends (keys of one slot
        # per script, pipelines split by node), which is what this package keeps to.
        return cast(aioredis.Redis, node_client)
    pool = aioredis.BlockingConnectionPool.from_url(
        url,
        max_connections=pool_size,
        timeout=timeout,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=aioredis.retry.Retry(NoBackoff(), 0),
        health_check_interval=30,
        # redis-py 8's default ("auto") skips the pool's check for connections Redis has closed, so
        # after a Redis restart every pooled connection failed its next command. Our Redis sends no
        # maintenance notifications (a managed-Redis feature), so nothing is lost by turning them off.
        maint_notifications_config=MaintNotificationsConfig(enabled=False),
    )
    # The URL's scheme chose the class (TCP, TLS, unix socket); no connection exists yet.
    pool.connection_class = hiredis_packing(pool.connection_class)
    client = cast(AsyncRedis, AsyncRedis.from_pool(pool))
    client.replica_acks = acks
    return client


class HiredisPacking:
    """Commands packed into RESP by hiredis, in C, as redis-py's sync client already does when hiredis
    is installed. redis-py's asyncio client packs in Python, copying the growing buffer once per
    argument (redis/redis-py#4176): for the PATCH's ~30-argument script call that was a quarter of the
    API process's CPU. The bytes on the wire are the same (``tests/integration/test_redis_packing.py``)."""

    def pack_command(self, *args: Any) -> list[bytes]:
        return [_pack(args)]

    def pack_commands(self, commands: Iterable[Iterable[Any]]) -> list[bytes]:
        return [b"".join(_pack(tuple(command)) for command in commands)]


def _pack(args: tuple[Any, ...]) -> bytes:
    first = args[0]
    if (" " if isinstance(first, str) else b" ") in first:  # "SCRIPT LOAD": sent as two arguments
        args = (*first.split(), *args[1:])
    try:
        return cast(bytes, hiredis.pack_command(args))
    except TypeError:
        pass
    # hiredis takes bytes but not their views (rare: redis-py's encoder accepts both).
    args = tuple(bytes(arg) if isinstance(arg, bytearray | memoryview) else arg for arg in args)
    try:
        return cast(bytes, hiredis.pack_command(args))
    except TypeError as exc:  # bool, None...: the error redis-py's own encoder raises
        raise DataError(str(exc)) from exc


def hiredis_packing(connection_class: type[AbstractConnection]) -> type[AbstractConnection]:
    return type(connection_class.__name__, (HiredisPacking, connection_class), {})


def sync_client(
    url: str, timeout: float = 5.0, acks: ReplicaAcks = NO_REPLICA_ACKS, cluster: bool | None = None
) -> redis.Redis:
    """See ``async_client``."""
    if cluster is None:
        cluster = bool(cluster_enabled(url, timeout))
    if cluster:
        node_client = SyncRedisCluster.from_url(
            url, retry=redis.retry.Retry(NoBackoff(), 0), **_cluster_options(timeout)
        )
        cast(SyncRedisCluster, node_client).replica_acks = acks
        return cast(redis.Redis, node_client)  # see async_client
    client = cast(
        SyncRedis,
        SyncRedis.from_url(
            url,
            decode_responses=True,
            socket_timeout=timeout,
            socket_connect_timeout=timeout,
            retry=redis.retry.Retry(NoBackoff(), 0),
            maint_notifications_config=MaintNotificationsConfig(enabled=False),  # see async_client
        ),
    )
    client.replica_acks = acks
    return client


class outage_as_unavailable:
    """``async with outage_as_unavailable():`` turns a Redis outage into ``StoreUnavailable``. A class:
    it wraps every Redis call, and a generator-based context manager costs several times more."""

    async def __aenter__(self) -> None:
        return None

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc is not None and isinstance(exc, OUTAGE_ERRORS):
            raise StoreUnavailable() from exc


class Batches:
    """Auto-pipelining: the script calls that concurrent requests make in one turn of the event loop go
    to Redis together, as one pipeline on one connection (without MULTI: each script is atomic on its
    own, and they are independent). redis-py spends about as much CPU per call on the connection, the
    timeout and the write as on the command itself; shared, that halves a call's cost under load and
    changes nothing for a lone request. Nothing is retried: a failed batch fails each of its calls,
    which become 503s like any other outage.

    A batch holds at most ``MAX_BATCH`` calls: with smaller batches Redis runs one while the API
    prepares the next, instead of both taking turns (measured with ``bench/run.py``: 8 beat 4, 16 and
    unbounded)."""

    MAX_BATCH = 8

    def __init__(self, client: aioredis.Redis) -> None:
        self.client = client
        self.acks = replica_acks(client)
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any], bool]] = []
        self._flushes: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def evalsha(self, sha: str, keys: Sequence[Any], args: Sequence[Any], confirm: bool = False) -> asyncio.Future[Any]:
        """``confirm``: the call is a write the caller is answered for, so its batch ends with the WAIT
        of ``acks`` (one WAIT covers every write before it on the connection)."""
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if len(self._pending) >= self.MAX_BATCH:
            self._pending = []  # full: its flush is scheduled; start the next batch
        self._pending.append(((sha, len(keys), *keys, *args), future, confirm))
        if len(self._pending) == 1:
            task = loop.create_task(self._flush(self._pending))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        return future

    async def _flush(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any], bool]]) -> None:
        if batch is self._pending:
            self._pending = []
        behind: Exception | None = None
        try:
            if isinstance(self.client, AsyncRedisCluster):
                commands = [("EVALSHA", *command) for command, _, _ in batch]
                keys = [command[2] for command, _, _ in batch]
                results = await self.client.run(commands, keys, [confirm for _, _, confirm in batch], self.acks)
            else:
                pipe = self.client.pipeline(transaction=False)
                for command, _, _ in batch:
                    pipe.execute_command("EVALSHA", *command)
                waits = self.acks.add(pipe) if self.acks.count and any(confirm for _, _, confirm in batch) else 0
                results = await pipe.execute(raise_on_error=False)
                if waits:  # for the writes that ran; a call that failed keeps its error
                    behind = self.acks.shortfall(results.pop())
        except Exception as exc:
            for _, future, _ in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are the calls waiting for it
            for _, future, _ in batch:
                future.cancel()
            raise
        for (_, future, confirm), result in zip(batch, results, strict=True):
            if future.done():  # its request was cancelled
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
            elif behind is not None and confirm:
                future.set_exception(behind)
            else:
                future.set_result(result)


# Redis refuses a script's first write when it is over maxmemory (policy noeviction); the script stops
# there, so nothing it would have written is. Redis 7 answers "-OOM …", which redis-py raises as
# OutOfMemoryError (its text without the OOM); 6.2 wraps it in a script error that keeps the words.
OOM_TEXT = "OOM command not allowed"


def raise_if_full(exc: ResponseError) -> None:
    if isinstance(exc, OutOfMemoryError) or OOM_TEXT in str(exc):
        raise InsufficientStorage() from exc


@contextmanager
def outage_as_unavailable_sync() -> Iterator[None]:
    try:
        yield
    except OUTAGE_ERRORS as exc:
        raise StoreUnavailable() from exc
