"""Redis clients with one explicit policy, and auto-pipelining for the API (a cluster's clients are in
``cluster``, replica acks in ``acks``, what failures become in ``outages``).

Retries are off: our write scripts are not idempotent (each bumps a version), and redis-py's default
retries a command after a timeout, which could run a script twice for one request. A failed call
becomes ``StoreUnavailable`` (HTTP 503 with ``Retry-After``) and the client decides whether to retry.
Timeouts are short so that an unreachable Redis is a fast answer, not a hung request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from typing import Any, cast

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.cluster import RedisCluster as SyncCluster
from redis.exceptions import DataError
from redis.maint_notifications import MaintNotificationsConfig

from agent_sessions.redis.acks import NO_REPLICA_ACKS, ReplicaAcks
from agent_sessions.redis.cluster import AsyncRedisCluster, SyncRedisCluster
from agent_sessions.redis.outages import OUTAGE_ERRORS


class AsyncRedis(aioredis.Redis):
    """An asyncio client that carries the store's replica acks to whatever pipelines writes on it."""

    replica_acks: ReplicaAcks = NO_REPLICA_ACKS


class SyncRedis(redis.Redis):
    """A synchronous client that carries the store's replica acks (see ``AsyncRedis``)."""

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
    wait = acks.command()
    results = await pipelined(client, [*commands, wait] if wait else commands)
    if wait:
        behind = acks.shortfall(results.pop())
        if behind is not None:
            results = [result if isinstance(result, Exception) else behind for result in results]
    return results


async def pipelined(
    client: aioredis.Redis, commands: Sequence[tuple[Any, ...]], held: HeldConnections | None = None
) -> list[Any]:
    """``commands`` on one connection of ``client``'s pool (or one ``held`` between calls), in one write,
    sent and answered within one ``REDIS_TIMEOUT``; each reply, or the error Redis answered, in its
    place. What redis-py's pipeline does with ``raise_on_error=False``, for a fraction of its CPU: it
    also set up a timeout, a retry wrapper, response callbacks and timing per command, which cost a
    PATCH more than any step of ours. A failure (the connection cut, the time out) fails the whole
    batch, and the connection, whose replies were not all read, is dropped rather than reused.

    The write and the reads are redis-py's own steps under this function's one timeout: the stream's
    write and drain (``_send_packed_command``; the public ``send_packed_command`` wraps it in
    ``asyncio.wait_for``, a task and a timer per batch) and the parser's reads (``read_response`` of the
    connection adds a timeout context, error wrapping and a health-check stamp per reply; the parser
    returns an error reply as its exception, as the loop below wants it). A connection failure raises
    ``ConnectionError`` or ``OSError`` here as there. The health check (a PING after
    ``health_check_interval`` idle) runs first, and the batch's replies stamp it once."""
    pool = client.connection_pool
    conn = await (held.take() if held else pool.get_connection())  # type: ignore[no-untyped-call]
    try:
        await conn.check_health()
        read = cast(Any, conn._parser).read_response
        async with asyncio.timeout(conn.socket_timeout):
            await conn._send_packed_command(conn.pack_commands(commands))
            replies: list[Any] = [await read() for _ in commands]
        if conn.health_check_interval:
            conn.next_health_check = asyncio.get_running_loop().time() + conn.health_check_interval
    except BaseException:
        try:
            await conn.disconnect(nowait=True)
        finally:
            await pool.release(conn)
        raise
    if held:
        await held.give_back(conn)
    else:
        await pool.release(conn)
    return replies


class HeldConnections:
    """A few of a pool's connections kept between batches by their ``Batches``, so that a batch takes
    one from a list instead of from the pool. redis-py 8's blocking pool takes ~20 us of CPU to lend
    and take back a connection (a condition, a lock, a timer, and metrics bookkeeping with no metrics
    configured), which a PATCH paid once per batch. A kept connection is checked as the pool checks
    its own before lending it (``ensure_connection``: one Redis closed, after a restart, is replaced
    before a command is sent on it). At most ``keep`` are kept, and none when the pool has fewer than
    eight connections in all (``REDIS_POOL_SIZE``), so the other commands never wait for connections
    held idle; the pool counts them as in use, and closing the client closes them too."""

    def __init__(self, pool: aioredis.ConnectionPool, keep: int = 4) -> None:
        self.pool = pool
        self.keep = min(keep, pool.max_connections // 8)
        self.idle: list[AbstractConnection] = []

    async def take(self) -> AbstractConnection:
        if not self.idle:
            return cast(AbstractConnection, await self.pool.get_connection())  # type: ignore[no-untyped-call]
        conn = self.idle.pop()
        try:
            await self.pool.ensure_connection(conn)
        except BaseException:
            await self.pool.release(conn)
            raise
        return conn

    async def give_back(self, conn: AbstractConnection) -> None:
        if len(self.idle) < self.keep:
            self.idle.append(conn)
        else:
            await self.pool.release(conn)


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
    return cast(SyncRedisCluster, client).run(commands, keys, acks)


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
        self._held = None if isinstance(client, AsyncRedisCluster) else HeldConnections(client.connection_pool)
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
        commands: list[tuple[Any, ...]] = [("EVALSHA", *command) for command, _, _ in batch]
        try:
            if isinstance(self.client, AsyncRedisCluster):
                keys = [command[2] for command, _, _ in batch]
                results = await self.client.run(commands, keys, [confirm for _, _, confirm in batch], self.acks)
            else:
                wait = self.acks.command() if any(confirm for _, _, confirm in batch) else None
                results = await pipelined(self.client, [*commands, wait] if wait else commands, self._held)
                if wait:  # for the writes that ran; a call that failed keeps its error
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
