"""Typed reads of a Redis stream, as the tests' clients (``decode_responses=True``) return them."""

from __future__ import annotations

from typing import Any, cast

import redis

from agent_sessions.redis.keys import KEYS

Entries = list[tuple[str, dict[str, str]]]


def entries(conn: redis.Redis, stream: str = KEYS.outbox, **kwargs: Any) -> Entries:
    """XRANGE (oldest first); ``kwargs`` as for ``xrange`` (min, max, count)."""
    return cast(Entries, conn.xrange(stream, **kwargs))


def newest(conn: redis.Redis, stream: str = KEYS.outbox) -> tuple[str, dict[str, str]]:
    return cast(Entries, conn.xrevrange(stream, count=1))[0]
