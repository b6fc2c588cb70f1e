"""Building Redis clients with one explicit policy, and turning outages into one domain error.

Retries are off: our write scripts are not idempotent (each bumps a version), and redis-py's default
retries a command after a timeout, which could run a script twice for one request. A failed call
becomes ``StoreUnavailable`` (HTTP 503 with ``Retry-After``) and the client decides whether to retry.
Timeouts are short so that an unreachable Redis is a fast answer, not a hung request.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import TracebackType
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff
from redis.exceptions import NoScriptError

from agent_sessions.errors import StoreUnavailable

OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError)


def async_client(url: str, timeout: float) -> aioredis.Redis:
    return aioredis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=aioredis.retry.Retry(NoBackoff(), 0),
        health_check_interval=30,
    )


def sync_client(url: str, timeout: float = 5.0) -> redis.Redis:
    return redis.Redis.from_url(
        url,
        decode_responses=True,
        socket_timeout=timeout,
        socket_connect_timeout=timeout,
        retry=redis.retry.Retry(NoBackoff(), 0),
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


class Script:
    """A Lua script, run with EVALSHA and loaded again when Redis has forgotten it (a restart, SCRIPT
    FLUSH). redis-py's ``AsyncScript`` does the same through one more layer of wrappers, and the outage
    mapping is folded in: both wrap every PATCH's one Redis call."""

    def __init__(self, client: aioredis.Redis, source: str) -> None:
        self.client = client
        self.source = source
        self.sha = hashlib.sha1(source.encode()).hexdigest()

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        """Run the script; a Redis outage raises ``StoreUnavailable``."""
        try:
            try:
                return await self.client.evalsha(self.sha, len(keys), *keys, *args)
            except NoScriptError:
                await self.client.script_load(self.source)
                return await self.client.evalsha(self.sha, len(keys), *keys, *args)
        except OUTAGE_ERRORS as exc:
            raise StoreUnavailable() from exc


@contextmanager
def outage_as_unavailable_sync() -> Iterator[None]:
    try:
        yield
    except OUTAGE_ERRORS as exc:
        raise StoreUnavailable() from exc
