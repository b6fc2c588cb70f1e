"""Redis clients with one explicit policy, auto-pipelining for the API, and outages as one domain error.

Retries are off: our write scripts are not idempotent (each bumps a version), and redis-py's default
retries a command after a timeout, which could run a script twice for one request. A failed call
becomes ``StoreUnavailable`` (HTTP 503 with ``Retry-After``) and the client decides whether to retry.
Timeouts are short so that an unreachable Redis is a fast answer, not a hung request.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any, cast

import hiredis
import redis
import redis.asyncio as aioredis
from redis.asyncio.connection import AbstractConnection
from redis.backoff import NoBackoff
from redis.exceptions import DataError, OutOfMemoryError, ResponseError
from redis.maint_notifications import MaintNotificationsConfig

from agent_sessions.errors import InsufficientStorage, StoreUnavailable

OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def async_client(url: str, timeout: float, pool_size: int = 64) -> aioredis.Redis:
    """A client whose pool holds at most ``pool_size`` connections; a request that finds them all busy
    waits for one up to ``timeout`` seconds (redis-py's default pool raises at once instead, and that
    was a 503 with Redis healthy). A pooled connection that Redis closed (a restart) is replaced before
    a command is sent on it, so no command is lost to a stale connection; a command whose reply was
    lost is never sent again."""
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
    return aioredis.Redis.from_pool(pool)


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


def sync_client(url: str, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=redis.retry.Retry(NoBackoff(), 0),
        maint_notifications_config=MaintNotificationsConfig(enabled=False),  # see async_client
    )


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
        self._pending: list[tuple[tuple[Any, ...], asyncio.Future[Any]]] = []
        self._flushes: set[asyncio.Task[None]] = set()  # the loop keeps only weak references to tasks

    def evalsha(self, sha: str, keys: Sequence[Any], args: Sequence[Any]) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future = loop.create_future()
        if len(self._pending) >= self.MAX_BATCH:
            self._pending = []  # full: its flush is scheduled; start the next batch
        self._pending.append(((sha, len(keys), *keys, *args), future))
        if len(self._pending) == 1:
            task = loop.create_task(self._flush(self._pending))
            self._flushes.add(task)
            task.add_done_callback(self._flushes.discard)
        return future

    async def _flush(self, batch: list[tuple[tuple[Any, ...], asyncio.Future[Any]]]) -> None:
        if batch is self._pending:
            self._pending = []
        pipe = self.client.pipeline(transaction=False)
        for command, _ in batch:
            pipe.evalsha(*command)
        try:
            results = await pipe.execute(raise_on_error=False)
        except Exception as exc:
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc)
            return
        except BaseException:  # cancelled (shutdown): so are the calls waiting for it
            for _, future in batch:
                future.cancel()
            raise
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():  # its request was cancelled
                continue
            if isinstance(result, Exception):
                future.set_exception(result)
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
