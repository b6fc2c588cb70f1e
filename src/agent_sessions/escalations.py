"""Escalations: the rule (README, "Events") and the webhook body.

An escalation is recorded once per event (``redis.escalations.EscalationStore``), counted in the agent's
report in the same step, and then delivered as a signed webhook by the delivery actor. A delivery that
exhausts its retries becomes a dead letter: kept, listed by ``agent-sessions deadletters list`` and
re-sent by ``agent-sessions deadletters retry ID``. Nothing is dropped.
"""

from __future__ import annotations

from dataclasses import dataclass

import orjson

from agent_sessions.events import Event


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


def webhook_body(event: Event) -> bytes:
    return orjson.dumps({"type": "session.escalated", "timestamp": event["occurred_at"], "data": event})
