"""Per-agent reports, kept by the reporting actor from events alone (never by scanning sessions).

The counting happens in ``lua/report_apply.lua`` (exactly once per event, in version order); this module
prepares its arguments and turns the stored hash into the ``GET /v2/agents/{agent_key}/report`` body.
"""

from __future__ import annotations

import hashlib
from typing import Any, cast

import redis
from redis.exceptions import NoScriptError
from typing_extensions import TypedDict

from agent_sessions import lua
from agent_sessions.events import Event

# How long a deleted session's reporter state outlives its last event (late duplicates still dedupe).
DELETED_STATE_TTL = 7 * 24 * 3600


class SessionCounts(TypedDict):
    total: int
    enabled: int


class Total(TypedDict):
    total: int


class Report(TypedDict):
    agent_key: str
    sessions: SessionCounts
    by_metadata: dict[str, dict[str, int]]
    # Per dimension: sessions whose value found every bucket taken (REPORT_MAX_VALUES).
    by_metadata_other: dict[str, int]
    updates: Total
    escalations: Total


def report_key(agent: str) -> str:
    return f"as:report:{agent}"


def dimension_value(metadata: dict[str, Any], dimension: str, max_chars: int) -> str | None:
    """The value a session counts under for one dimension: its string value, cut to ``max_chars``
    characters; None (not counted) for anything that is not a string (absent, numbers, booleans, null,
    objects, arrays: categories are strings, and ``1`` and ``"1"`` must not share a bucket)."""
    value = metadata.get(dimension)
    return value[:max_chars] if isinstance(value, str) else None


def report_from_hash(agent: str, fields: dict[str, str], dimensions: tuple[str, ...]) -> Report:
    by_metadata: dict[str, dict[str, int]] = {d: {} for d in dimensions}
    other = dict.fromkeys(dimensions, 0)
    for field, count in fields.items():
        if field.startswith("m:"):
            dimension, _, value = field[2:].partition(":")
            if dimension in by_metadata and int(count) > 0:
                by_metadata[dimension][value] = int(count)
        elif field.startswith("o:") and field[2:] in other:
            other[field[2:]] = int(count)
    return {
        "agent_key": agent,
        "sessions": {
            "total": int(fields.get("sessions_total", 0)),
            "enabled": int(fields.get("sessions_enabled", 0)),
        },
        "by_metadata": by_metadata,
        "by_metadata_other": other,
        "updates": {"total": int(fields.get("updates_total", 0))},
        "escalations": {"total": int(fields.get("escalations_total", 0))},
    }


class Reports:
    """The writing side, used by the reporting actor (synchronous, like Dramatiq actors)."""

    def __init__(
        self, client: redis.Redis, dimensions: tuple[str, ...], max_values: int = 100, max_chars: int = 64
    ) -> None:
        self.redis = client
        self.dimensions = dimensions
        self.max_values = max_values
        self.max_chars = max_chars
        self._source = lua.source("report_apply")
        self._sha = hashlib.sha1(self._source.encode()).hexdigest()

    def apply(self, event: Event) -> bool:
        """Count ``event``; False when it was already counted (a redelivery)."""
        return self.apply_all([event]) == 1

    def apply_all(self, events: list[Event]) -> int:
        """Count a batch (each event exactly once); returns how many were new. One round trip: each
        event is its own script call, atomic on its own, sent together in one pipeline (no MULTI).
        Re-sending the batch (Redis forgot the script, or the actor is retried) counts nothing twice."""
        if not events:
            return 0
        try:
            replies = self._send(events)
        except NoScriptError:
            self.redis.script_load(self._source)
            replies = self._send(events)
        return sum(reply == "applied" for reply in replies)

    def _send(self, events: list[Event]) -> list[Any]:
        pipe = self.redis.pipeline(transaction=False)
        for event in events:
            keys, args = self._call(event)
            pipe.evalsha(self._sha, len(keys), *keys, *args)
        return pipe.execute()

    def _call(self, event: Event) -> tuple[list[str], list[Any]]:
        agent, session = event["agent_key"], event["session_key"]
        incarnation = f"{agent}:{session}:{event['incarnation']}"
        args: list[Any] = [
            event["type"],
            event["version"],
            "1" if event["session"]["enabled"] else "0",
            DELETED_STATE_TTL,
            self.max_values,
        ]
        metadata = event["session"]["metadata"]
        for dimension in self.dimensions:
            value = dimension_value(metadata, dimension, self.max_chars)
            args += (dimension, "" if value is None else "=" + value)
        return [report_key(agent), f"as:report:state:{incarnation}", f"as:report:ooo:{incarnation}"], args

    def read(self, agent: str) -> Report:
        fields = cast(dict[str, str], self.redis.hgetall(report_key(agent)))
        return report_from_hash(agent, fields, self.dimensions)
