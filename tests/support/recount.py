"""The report's rule, stated independently of the reporting code: what a report must say, recounted
from the stored sessions alone.

A session counts under a dimension when its metadata value there is a string ("" included), cut to
``max_chars`` characters. The report shows a value's count only while the dimension had a bucket for
it (``REPORT_MAX_VALUES``); every session whose value has no bucket is counted in
``by_metadata_other``. So: each value shown equals its recount, and ``other`` equals the recount of
the values not shown.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import redis

from agent_sessions.redis.keys import Keys
from tests.support import stream
from tests.support.api import DIMS
from tests.support.keys import KEYS
from tests.support.wait import eventually


def recount(
    conn: redis.Redis, agent: str, dims: tuple[str, ...], max_chars: int = 64, keys: Keys = KEYS
) -> dict[str, Any]:
    sessions = [conn.hgetall(k) for k in conn.scan_iter(keys.session_prefix(agent) + "*")]
    by: dict[str, dict[str, int]] = {d: {} for d in dims}
    for s in sessions:
        metadata = json.loads(s["metadata"])
        for d in dims:
            value = metadata.get(d)
            if isinstance(value, str):
                by[d][value[:max_chars]] = by[d].get(value[:max_chars], 0) + 1
    return {
        "agent_key": agent,
        "sessions": {"total": len(sessions), "enabled": sum(s["enabled"] == "1" for s in sessions)},
        "by_metadata": by,
        "updates": {"total": sum(int(s["version"]) - 1 for s in sessions)},
    }


def assert_report_matches(report: Any, expected: dict[str, Any], max_values: int = 100) -> None:
    assert report["sessions"] == expected["sessions"]
    for dim, counts in expected["by_metadata"].items():
        shown = report["by_metadata"][dim]
        assert len(shown) <= max_values
        assert all(counts.get(value) == n for value, n in shown.items()), (dim, shown, counts)
        assert report["by_metadata_other"][dim] == sum(n for v, n in counts.items() if v not in shown)


# The default escalation rules (settings ESCALATE_WHEN_BECOMES and ESCALATE_WHEN_CHANGES), restated.
BECOMES = {"priority": "urgent", "resolution_status": "escalated"}
CHANGES = ("escalation_level",)


def recount_escalations(conn: redis.Redis, agent: str, keys: Keys = KEYS) -> int:
    """The updates of ``agent``'s sessions that the default rules escalate, recounted from the stored
    histories (so: while each history holds every update of its session, HISTORY_MAX)."""
    escalations = 0
    for key in conn.scan_iter(keys.history_prefix(agent) + "*"):
        if key.endswith(":bytes"):
            continue
        for text in conn.lrange(key, 0, -1):
            entry = json.loads(text)
            if "metadata" not in entry["n"] or entry["v"] == 1:
                continue
            before, after = json.loads(entry["o"]["metadata"]), json.loads(entry["n"]["metadata"])
            escalations += any(after.get(k) == v and before.get(k) != v for k, v in BECOMES.items()) or any(
                k in after and after[k] != before.get(k) for k in CHANGES
            )
    return escalations


def assert_report_equals_recount(
    base: str, headers: dict[str, str], redis_url: str, agent: str, timeout: float = 90
) -> dict[str, Any]:
    """Once the event pipeline has drained: ``agent``'s report equals the recount of its stored sessions,
    escalations included (each counted once), and the outbox is empty. Returns the recount."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    expected = recount(conn, agent, DIMS) | {"escalations": {"total": recount_escalations(conn, agent)}}
    assert expected["escalations"]["total"] > 0

    def report() -> dict[str, Any]:
        body: dict[str, Any] = httpx.get(f"{base}/v2/agents/{agent}/report", headers=headers).json()
        return body

    def caught_up() -> bool:
        counted = report()
        return all(counted[k] == expected[k] for k in ("updates", "escalations"))

    # The relay acknowledges an event after enqueueing it, so the report can be ahead of the outbox;
    # events a dead relay enqueued but never acknowledged are counted already, yet stay in the outbox
    # until a live relay reclaims them (RELAY_CLAIM_IDLE_MS), and count nothing twice. A worker records
    # each escalation as an event of its own, into the outbox: the outbox is empty for good only once
    # every escalation is counted.
    eventually(
        lambda: caught_up() and stream.outbox_length(conn) == 0,
        "the report did not catch up with the stored sessions",
        timeout,
    )
    assert {k: v for k, v in report().items() if k in expected} == expected
    assert stream.outbox_length(conn) == 0
    return expected
