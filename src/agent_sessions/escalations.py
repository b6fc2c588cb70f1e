"""Escalations: the rule (README, "Events"), their records in Redis, and dead letters.

An escalation is recorded once per event (``lua/escalation_record.lua``), counted in the agent's
report in the same step, and then delivered as a signed webhook by the delivery actor. A delivery that
exhausts its retries becomes a dead letter: kept, listed by ``agent-sessions deadletters list`` and
re-sent by ``agent-sessions deadletters retry ID``. Nothing is dropped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import orjson
import redis

from agent_sessions import lua
from agent_sessions.events import Event
from agent_sessions.reports import report_key

DEAD_LETTERS = "as:deadletters"
METRICS = "as:metrics"  # counters the workers keep for /metrics (see metrics.py)


@dataclass(frozen=True)
class EscalationRule:
    becomes: tuple[tuple[str, str], ...]
    changes: tuple[str, ...]

    def reasons(self, event: Event) -> list[str]:
        """Why this update escalates (empty: it does not)."""
        after = event["session"]["metadata"]
        metadata_change = event["changes"].get("metadata")
        before = metadata_change["old"] if metadata_change else after
        reasons = [
            f"{key} became {value}"
            for key, value in self.becomes
            if after.get(key) == value and before.get(key) != value
        ]
        # A value that disappears is a de-escalation, never an escalation.
        reasons += [f"{key} changed" for key in self.changes if key in after and before.get(key) != after[key]]
        return reasons


def escalation_key(event_id: str) -> str:
    return f"as:escalation:{event_id}"


def webhook_body(event: Event) -> bytes:
    return orjson.dumps({"type": "session.escalated", "timestamp": event["occurred_at"], "data": event})


class Escalations:
    def __init__(self, client: redis.Redis) -> None:
        self.redis = client
        self._record = client.register_script(lua.source("escalation_record"))

    def record(self, event: Event, reasons: list[str], deliver: bool) -> tuple[bool, str]:
        """(whether this call recorded it, its status). Idempotent on the event id."""
        agent = event["agent_key"]
        occurred_ms = int(datetime.fromisoformat(event["occurred_at"]).timestamp() * 1000)
        reply = cast(
            list[str],
            self._record(
                keys=[escalation_key(event["event_id"]), f"as:escalations:{agent}", report_key(agent)],
                args=[
                    event["event_id"],
                    agent,
                    event["session_key"],
                    "; ".join(reasons),
                    webhook_body(event),
                    occurred_ms,
                    "pending" if deliver else "unsent",
                ],
            ),
        )
        return reply[0] == "new", reply[1]

    def get(self, event_id: str) -> dict[str, str]:
        return cast(dict[str, str], self.redis.hgetall(escalation_key(event_id)))

    def delivered(self, event_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(escalation_key(event_id), mapping={"status": "delivered", "delivered_at": _now_ms()})
        pipe.hincrby(METRICS, "webhooks:delivered", 1)
        pipe.execute()

    def failed_attempt(self, event_id: str, error: str) -> int:
        """Record a failed attempt; returns the attempts made so far."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(escalation_key(event_id), "attempts", 1)
        pipe.hset(escalation_key(event_id), "last_error", error)
        pipe.hincrby(METRICS, "webhooks:failed", 1)
        attempts, *_ = pipe.execute()
        return int(attempts)

    def dead(self, event_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(escalation_key(event_id), "status", "dead")
        pipe.zadd(DEAD_LETTERS, {event_id: int(_now_ms())})
        pipe.hincrby(METRICS, "webhooks:dead_lettered", 1)
        pipe.execute()

    def dead_letters(self) -> list[dict[str, Any]]:
        ids = cast(list[str], self.redis.zrange(DEAD_LETTERS, 0, -1))
        return [{"id": event_id, **self.get(event_id)} for event_id in ids]

    def revive(self, event_id: str) -> bool:
        """Take a dead letter back to pending (before re-sending it); False if it is not dead."""
        if not self.redis.zrem(DEAD_LETTERS, event_id):
            return False
        self.redis.hset(escalation_key(event_id), mapping={"status": "pending", "attempts": 0})
        return True


def _now_ms() -> str:
    return str(int(time.time() * 1000))
