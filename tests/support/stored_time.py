"""Stored fixtures whose times are relative to now when loaded.

A store dumped on one day holds that day's times everywhere: hash fields and history entries in
milliseconds, stream entry ids (``<ms>-<seq>``), zset scores, key names (a report's incarnation), and
RFC 3339 texts and event log cursors in the answers recorded with it. A session with a time-to-idle
expires at a fixed moment, so a test that loads the dump as it is passes until that day and fails
after it. ``shifted`` moves every time in the dump by the same whole number of seconds, so that the
dump's earliest time becomes ``age_s`` seconds ago: the fixture is the same store, made a moment ago,
on any date.
"""

from __future__ import annotations

import re
import time
from datetime import UTC, datetime
from typing import Any

from agent_sessions.events.feed import CURSOR_PREFIX, decode_cursor, encode_cursor

# Milliseconds since the epoch from 2001 to 2286 (13 digits), not part of a longer number.
MILLIS = re.compile(r"(?<![0-9])([1-9][0-9]{12})(?![0-9])")
RFC3339 = re.compile(r"\b(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(\.\d{3})?Z")
CURSOR = re.compile(re.escape(CURSOR_PREFIX) + r"[A-Za-z0-9_-]+")  # an event log cursor holds a stream id


def _rfc3339_ms(text: str) -> int:
    whole, fraction = RFC3339.fullmatch(text).groups()  # type: ignore[union-attr]
    seconds = datetime.strptime(whole, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=UTC).timestamp()
    return int(seconds) * 1000 + (int(fraction[1:]) if fraction else 0)


def earliest_ms(text: str) -> int:
    """The earliest time written in ``text``, in milliseconds."""
    found = [int(m) for m in MILLIS.findall(text)] + [_rfc3339_ms(m.group(0)) for m in RFC3339.finditer(text)]
    return min(found)


def shift_text(text: str, delta_ms: int) -> str:
    """Every time in ``text`` moved by ``delta_ms`` (a whole number of seconds, so that times written
    to the second stay exact)."""
    assert delta_ms % 1000 == 0

    def millis(match: re.Match[str]) -> str:
        return str(int(match.group(1)) + delta_ms)

    def rfc3339(match: re.Match[str]) -> str:
        moved = datetime.fromtimestamp((_rfc3339_ms(match.group(0)) + delta_ms) / 1000, UTC)
        if match.group(2) is None:
            return moved.strftime("%Y-%m-%dT%H:%M:%SZ")
        return moved.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moved.microsecond // 1000:03d}Z"

    def cursor(match: re.Match[str]) -> str:
        return encode_cursor(shift_text(decode_cursor(match.group(0)), delta_ms))

    return CURSOR.sub(cursor, RFC3339.sub(rfc3339, MILLIS.sub(millis, text)))


def delta_to_now(text: str, age_s: int = 60, now_ms: int | None = None) -> int:
    """The shift that makes the earliest time of ``text`` ``age_s`` seconds before now."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    return (now - age_s * 1000 - earliest_ms(text)) // 1000 * 1000


def shifted(value: Any, delta_ms: int) -> Any:
    """``value`` (decoded JSON) with every time in it, keys and nested texts included, moved."""
    if isinstance(value, str):
        return shift_text(value, delta_ms)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value + delta_ms if MILLIS.fullmatch(str(int(value))) else value
    if isinstance(value, list):
        return [shifted(item, delta_ms) for item in value]
    if isinstance(value, dict):
        return {shift_text(key, delta_ms): shifted(item, delta_ms) for key, item in value.items()}
    return value
