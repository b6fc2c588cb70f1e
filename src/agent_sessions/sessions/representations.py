"""Stored hash fields -> the resources clients see (the API's responses and the events' ``session``)."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

from agent_sessions.sessions.models import Agent, Session

Fields = dict[str, str]


def timestamp(ms: str) -> str:
    """Milliseconds since the epoch -> RFC 3339 UTC with ``Z``, to the second (as in the seed)."""
    return _second(int(ms) // 1000)


@lru_cache(maxsize=4096)
def _second(seconds: int) -> str:
    # Every response formats two timestamps; most fall in a recent second, so formatting is cached.
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _common(fields: Fields) -> dict[str, Any]:
    """The fields agents and sessions share, from their stored representation."""
    return {
        "name": fields["name"],
        "description": fields["description"],
        "metadata": orjson.loads(fields["metadata"]),
        "enabled": fields["enabled"] == "1",
        "created_at": timestamp(fields["created_at"]),
        "updated_at": timestamp(fields["updated_at"]),
    }


def minutes(stored: str | None) -> float:
    """A stored time-to-idle ("30", "0.5"; absent on data older than expiry: never) -> its JSON number."""
    if stored is None or stored == "0":
        return 0
    value = float(stored)
    return int(value) if value == int(value) else value


def expires_at(updated_at: str, tti: str | None) -> int | None:
    """When a session expires, in ms; the same arithmetic as ``expires_at`` in lua/_index.lua."""
    if tti is None or tti == "0":
        return None
    value = float(tti)
    return int(updated_at) + math.floor(value * 60000) if value > 0 else None


def agent_resource(agent: str, fields: Fields) -> Agent:
    return {"key": agent, **_common(fields), "default_tti_minutes": minutes(fields.get("default_tti_minutes"))}  # type: ignore[typeddict-item]


def session_resource(agent: str, session: str, fields: Fields) -> Session:
    tti = fields.get("tti_minutes")
    expiry = expires_at(fields["updated_at"], tti)
    return {
        "id": session,
        "agent_key": agent,
        **_common(fields),  # type: ignore[typeddict-item]
        "version": int(fields["version"]),
        "tti_minutes": minutes(tti),
        "expires_at": None if expiry is None else event_time(str(expiry)),
    }


def event_time(ms: str) -> str:
    """Events carry milliseconds: consumers order and measure latency with them."""
    moment = datetime.fromtimestamp(int(ms) / 1000, UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{int(ms) % 1000:03d}Z"


def stored_value(field: str, stored: str | None) -> Any:
    """A field's stored representation -> its JSON value (metadata is JSON text, enabled "1"/"0")."""
    if stored is None:
        return None
    if field == "metadata":
        return orjson.loads(stored)
    if field == "enabled":
        return stored == "1"
    if field in ("tti_minutes", "default_tti_minutes"):
        return minutes(stored)
    return stored
