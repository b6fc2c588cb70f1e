"""Escalation: apply the agent's rules to each update's before/after, record each escalation, and queue
it for the webhook endpoints that subscribe to ``session.escalated``."""

from __future__ import annotations

import logging

import dramatiq

from agent_sessions.escalations import rules
from agent_sessions.escalations.model import fired
from agent_sessions.events.model import ESCALATE, ESCALATED, EventDict
from agent_sessions.webhooks.model import Message, escalation_body, escalation_message
from agent_sessions.worker.context import ActorGraph, Worker

log = logging.getLogger("agent_sessions.actors.escalation")


def escalate(worker: ActorGraph, events: list[EventDict]) -> None:
    defaults = worker.default_rules
    stored = worker.fanout.rules(sorted({event["agent_key"] for event in events}))
    # Each agent's rules decoded once per batch, not once per event.
    in_use = {agent: defaults if text is None else rules.decode(text) for agent, text in stored.items()}
    subscriptions = worker.fanout.subscriptions()
    deliveries: list[tuple[str, Message]] = []
    for event in events:
        agent = event["agent_key"]
        names = fired(in_use[agent], event)
        if not names:
            continue
        new, body = worker.escalations.record(event, names, escalation_body(event, names))
        endpoints = [s.id for s in subscriptions if s.wants(ESCALATED, agent)]
        if new:
            log.warning(
                "session escalated: %s/%s v%s (rule %s)%s",
                agent,
                event["session_key"],
                event["version"],
                ", ".join(names),
                "" if endpoints else " - no webhook endpoint subscribes to session.escalated: recorded only",
            )
        # Also when the record already existed: a crash between recording and queuing must not lose
        # the deliveries. Queuing is idempotent on the message id.
        message = escalation_message(event["event_id"], body)
        deliveries += [(endpoint, message) for endpoint in endpoints]
    worker.fanout.queue(deliveries)


def declare(broker: dramatiq.Broker, worker: Worker) -> None:
    def actor(events: list[EventDict]) -> None:
        escalate(worker.open(), events)

    dramatiq.actor(
        actor_name=ESCALATE[0],
        queue_name=ESCALATE[1],
        broker=broker,
        max_retries=50,
        min_backoff=500,
        max_backoff=60_000,
    )(actor)
