"""Escalation records, their delivery state and the dead letters (synchronous: workers and the CLI).

An escalation is recorded once per event (``lua/escalation_record.lua``) and counted in the agent's
report in the same step. Delivery outcomes are counted for /metrics (``counters``).
"""

from __future__ import annotations

import time
from datetime import datetime
from typing import Any, cast

import redis

from agent_sessions.escalations import webhook_body
from agent_sessions.events import Event
from agent_sessions.redis.keys import KEYS, Keys
from agent_sessions.redis.scripts import SyncScript


class EscalationStore:
    def __init__(self, client: redis.Redis, keys: Keys = KEYS) -> None:
        self.redis = client
        self.keys = keys
        self._record = SyncScript(client, "escalation_record")

    def record(self, event: Event, reasons: list[str], deliver: bool) -> tuple[bool, str]:
        """(whether this call recorded it, its status). Idempotent on the event id."""
        agent = event["agent_key"]
        occurred_ms = int(datetime.fromisoformat(event["occurred_at"]).timestamp() * 1000)
        reply = cast(
            list[str],
            self._record(
                [self.keys.escalation(event["event_id"]), self.keys.escalations(agent), self.keys.report(agent)],
                [
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
        return cast(dict[str, str], self.redis.hgetall(self.keys.escalation(event_id)))

    def delivered(self, event_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.escalation(event_id), mapping={"status": "delivered", "delivered_at": _now_ms()})
        pipe.hincrby(self.keys.counters, "webhooks:delivered", 1)
        pipe.execute()

    def failed_attempt(self, event_id: str, error: str) -> int:
        """Record a failed attempt; returns the attempts made so far."""
        pipe = self.redis.pipeline(transaction=True)
        pipe.hincrby(self.keys.escalation(event_id), "attempts", 1)
        pipe.hset(self.keys.escalation(event_id), "last_error", error)
        pipe.hincrby(self.keys.counters, "webhooks:failed", 1)
        attempts, *_ = pipe.execute()
        return int(attempts)

    def dead(self, event_id: str) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(self.keys.escalation(event_id), "status", "dead")
        pipe.zadd(self.keys.dead_letters, {event_id: int(_now_ms())})
        pipe.hincrby(self.keys.counters, "webhooks:dead_lettered", 1)
        pipe.execute()

    def dead_letters(self) -> list[dict[str, Any]]:
        ids = cast(list[str], self.redis.zrange(self.keys.dead_letters, 0, -1))
        return [{"id": event_id, **self.get(event_id)} for event_id in ids]

    def revive(self, event_id: str) -> bool:
        """Take a dead letter back to pending (before re-sending it); False if it is not dead."""
        if not self.redis.zrem(self.keys.dead_letters, event_id):
            return False
        self.redis.hset(self.keys.escalation(event_id), mapping={"status": "pending", "attempts": 0})
        return True


def _now_ms() -> str:
    return str(int(time.time() * 1000))
