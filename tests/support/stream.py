"""Typed reads of a Redis stream, as the tests' clients (``decode_responses=True``) return them."""

from __future__ import annotations

from typing import Any, cast

import redis

from agent_sessions.redis.keys import Keys
from tests.support.keys import KEYS

Entries = list[tuple[str, dict[str, str]]]


def outboxes(keys: Keys = KEYS) -> list[str]:
    return [keys.outbox(tag) for tag in keys.tags()]


def entries(conn: redis.Redis, stream: str | None = None, **kwargs: Any) -> Entries:
    """XRANGE (oldest first) of ``stream``, or of every partition's outbox merged by id; ``kwargs`` as
    for ``xrange`` (min, max, count)."""
    if stream is not None:
        return cast(Entries, conn.xrange(stream, **kwargs))
    merged = sorted(
        (entry for outbox in outboxes() for entry in cast(Entries, conn.xrange(outbox, **kwargs))),
        key=lambda entry: tuple(int(part) for part in entry[0].split("-")),
    )
    return merged[: kwargs["count"]] if "count" in kwargs else merged


def newest(conn: redis.Redis, stream: str | None = None) -> tuple[str, dict[str, str]]:
    if stream is not None:
        return cast(Entries, conn.xrevrange(stream, count=1))[0]
    return entries(conn)[-1]


def outbox_length(conn: redis.Redis) -> int:
    """Entries in every partition's outbox."""
    return sum(int(conn.xlen(outbox)) for outbox in outboxes())
