"""Escalation: apply the rule to each update's before/after, record it, hand it to webhook delivery."""

from __future__ import annotations

import logging

import dramatiq

from agent_sessions.events import ESCALATE, Event
from agent_sessions.worker.broker import enqueue_delivery
from agent_sessions.worker.context import Worker

log = logging.getLogger("agent_sessions.actors.escalation")


def escalate(worker: Worker, broker: dramatiq.Broker, event: Event) -> None:
    reasons = worker.rule.reasons(event)
    if not reasons:
        return
    deliver = worker.settings.escalation_webhook_url is not None
    new, status = worker.escalations.record(event, reasons, deliver)
    if new:
        log.warning(
            "session escalated: %s/%s v%s (%s)%s",
            event["agent_key"],
            event["session_key"],
            event["version"],
            "; ".join(reasons),
            "" if deliver else " - no ESCALATION_WEBHOOK_URL set, recorded only",
        )
    # Also when the record already existed: a crash between recording and enqueueing must not lose
    # the delivery. A duplicate delivery message finds the escalation delivered and does nothing.
    if status == "pending":
        enqueue_delivery(broker, worker.settings, event["event_id"])


def declare(broker: dramatiq.Broker, worker: Worker) -> None:
    def actor(events: list[Event]) -> None:
        for event in events:
            escalate(worker.open(), broker, event)

    dramatiq.actor(
        actor_name=ESCALATE[0],
        queue_name=ESCALATE[1],
        broker=broker,
        max_retries=50,
        min_backoff=500,
        max_backoff=60_000,
    )(actor)
