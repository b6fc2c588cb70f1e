"""Per-agent reports, kept by the reporting actor from events alone (never by scanning sessions).

The counting happens in ``lua/report_apply.lua`` (exactly once per event, in version order), called by
``reports.store.ReportStore``; this module holds the rules: which value a session counts under, and how
the stored hash becomes the ``GET /v2/agents/{agent_key}/report`` body.
"""

from __future__ import annotations

from typing import Any

from typing_extensions import TypedDict


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
