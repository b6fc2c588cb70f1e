"""Escalation records (synchronous: the escalation actor).

An escalation is recorded once per event (``lua/escalation_record.lua``), counted in the agent's
report and put in the outbox as a ``session.escalated`` event (the relay appends it to the event log)
in the same step; its webhook body is fixed then, so every endpoint and every retry sends the same
bytes. Delivering it is the webhook deliveries' job (``webhooks.store``).

A record is kept as long as the event log keeps its event (what a redelivery or a recovery rebuilds
it from), and at least ``MIN_KEEP_MS``: it is also what makes an event the relay or Dramatiq sends again
a no-op, and those re-sends come within an hour (the actor's 50 retries back off to a minute at most).
"""

from __future__ import annotations

from typing import cast

import redis

from agent_sessions.escalations.lua import ESCALATION_RECORD
from agent_sessions.events.model import EventDict
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.scripts import SyncScript
from agent_sessions.webhooks.model import escalation_id

MIN_KEEP_MS = 24 * 3600 * 1000


class EscalationStore:
    def __init__(self, client: redis.Redis, keys: Keys, retention_s: float = 24 * 3600) -> None:
        self.redis = client
        self.keys = keys
        self.keep_ms = max(MIN_KEEP_MS, int(retention_s * 1000))
        self._record = SyncScript(client, ESCALATION_RECORD)

    def record(self, event: EventDict, fired: list[str], body: bytes) -> tuple[bool, bytes]:
        """(whether this call recorded it, the body recorded first). Idempotent on the event id."""
        agent = event["agent_key"]
        reply = cast(
            list[str],
            self._record(
                {
                    "escalation": self.keys.escalation(agent, event["event_id"]),
                    "report": self.keys.report(agent),
                    "outbox": self.keys.outbox(self.keys.tag(agent)),
                },
                {
                    "event_id": event["event_id"],
                    "agent": agent,
                    "session": event["session_key"],
                    "rules": ",".join(fired),
                    "body": body,
                    "keep_ms": self.keep_ms,
                    "escalation_id": escalation_id(event["event_id"]),
                    "version": event["version"],
                    "actor": event["actor"],
                    "request_id": event["request_id"],
                },
            ),
        )
        return reply[0] == "new", reply[1].encode()

    def get(self, event_id: str) -> dict[str, str]:
        """The record of ``event_id``, looked for in every partition (the caller knows no agent)."""
        pipe = self.redis.pipeline(transaction=False)
        for key in self.keys.escalations_of(event_id):
            pipe.hgetall(key)
        return next((found for found in cast(list[dict[str, str]], pipe.execute()) if found), {})
