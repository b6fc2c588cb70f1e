"""Building Redis clients with one explicit policy, and turning outages into one domain error.

Retries are off: our write scripts are not idempotent (each bumps a version), and redis-py's default
retries a command after a timeout, which could run a script twice for one request. A failed call
becomes ``StoreUnavailable`` (HTTP 503 with ``Retry-After``) and the client decides whether to retry.
Timeouts are short so that an unreachable Redis is a fast answer, not a hung request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager

import redis
import redis.asyncio as aioredis
from redis.backoff import NoBackoff

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


@asynccontextmanager
async def outage_as_unavailable() -> AsyncIterator[None]:
    try:
        yield
    except OUTAGE_ERRORS as exc:
        raise StoreUnavailable() from exc


@contextmanager
def outage_as_unavailable_sync() -> Iterator[None]:
    try:
        yield
    except OUTAGE_ERRORS as exc:
        raise StoreUnavailable() from exc
