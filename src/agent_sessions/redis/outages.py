"""How Redis failing shows, and what it becomes: an outage (a connection refused, cut or timed out, or a
Redis Cluster answering CLUSTERDOWN while a failed primary is not yet replaced) is ``StoreUnavailable``
(HTTP 503 with ``Retry-After``), a full Redis ``InsufficientStorage`` (507), a cluster node's
redirection (the command did not run) ``StoreUnavailable`` too."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType

import redis
from redis.exceptions import (
    AskError,
    ClusterDownError,
    OutOfMemoryError,
    ResponseError,
    SlotNotCoveredError,
    TryAgainError,
)

from agent_sessions.errors import InsufficientStorage, StoreUnavailable

# ClusterDownError: the command was refused, not run (a ResponseError, so named before it in handlers);
# SlotNotCoveredError: the client knows no node for the key's slot (a primary failed, not yet replaced).
OUTAGE_ERRORS = (redis.ConnectionError, redis.TimeoutError, OSError, ClusterDownError, SlotNotCoveredError)
# A cluster node's answer that a command's slot is served elsewhere (MovedError is an AskError), is
# moving, or is served by no node for now: the command did not run.
REDIRECTIONS = (AskError, TryAgainError, ClusterDownError)
SLOT_MOVED = "the key's slot is served by another node now (a failover or a resharding); retry"


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
