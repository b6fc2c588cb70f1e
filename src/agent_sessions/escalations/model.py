"""Escalations: which updates escalate (``rules``), recorded once, then delivered as webhooks.

An escalation is recorded once per event (``escalations.store.EscalationStore``), counted in the agent's
report in the same step, and queued as a ``session.escalated`` message for every webhook endpoint that
subscribes to it (and for ``ESCALATION_WEBHOOK_URL``). A delivery that exhausts its retries becomes a
dead letter of its endpoint: kept, listed (``GET /v2/webhook_endpoints/{id}/deliveries?status=dead``,
``agent-sessions deadletters list``) and sent again on request. Nothing is dropped.
"""

from __future__ import annotations

from agent_sessions.escalations.rules import Rules
from agent_sessions.events.model import EventDict
from agent_sessions.sessions.models import Metadata


def before_and_after(event: EventDict) -> tuple[Metadata, Metadata]:
    """An update's metadata before and after it."""
    after: Metadata = event["session"]["metadata"]
    change = event["changes"].get("metadata")
    return (change["old"] if change else after), after


def fired(rules: Rules, event: EventDict) -> list[str]:
    """The names of the rules this update fires (empty: it does not escalate)."""
    return rules.fired(*before_and_after(event))
