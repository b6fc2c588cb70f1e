"""Session events: what the write scripts put in the outbox, and what consumers receive.

An event (README, "Events")::

    {"event_id": "evt_…", "type": "session.updated", "occurred_at": "…Z", "agent_key": "agt_…",
     "session_key": "ase_…", "version": 7, "changes": {"metadata": {"old": {…}, "new": {…}}},
     "session": {full session after the change}, "actor": "<key id>", "request_id": "req_…"}

``changes`` holds each changed field's old and new value (``session.updated``; empty for created and
deleted and expired). ``incarnation`` (the session's creation time in milliseconds) tells apart the lifetimes of a
session key that was deleted and created again. For ``session.deleted`` and ``session.expired``,
``session`` is the last state and ``version`` is one past it.
Delivery is at least once: consumers dedupe on ``event_id`` (equivalently, on agent, session and
version, which identify an event just as uniquely).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from agent_sessions.ids import new_id
from agent_sessions.representations import event_time, session_resource, stored_value

CREATED, UPDATED, DELETED = "session.created", "session.updated", "session.deleted"
EXPIRED = "session.expired"  # deleted by the workers after its time-to-idle (actor "system")

# Consumers, by Dramatiq actor name and queue. The relay enqueues by these names, so the API and the
# relay never import actor code; tests check the actors are declared with the same names and queues.
# The event consumers take a list of events (one message per relay batch): fewer, larger messages.
REPORT = ("report_events", "reports")
ESCALATE = ("escalate_events", "escalations")
DELIVER_WEBHOOK = ("deliver_webhook", "webhooks")  # the previous version's delivery messages


@dataclass(frozen=True)
class Origin:
    """Who caused a change: the API key id and the request id (both land in the event)."""

    actor: str
    request_id: str


SYSTEM = Origin("system", "")


def new_event_id() -> str:
    return new_id("evt")


Event = dict[str, Any]


def event_from_entry(fields: dict[str, str]) -> Event:
    """An outbox stream entry (written by ``emit_event`` in lua/_change.lua) -> the event consumers receive."""
    agent, session = fields["agent_key"], fields["session_key"]
    snapshot = {k[2:]: v for k, v in fields.items() if k.startswith("s:")}
    resource = session_resource(agent, session, snapshot)
    changes = {}
    for key, old in fields.items():
        if key.startswith("o:"):
            name = key[2:]
            changes[name] = {"old": stored_value(name, old), "new": resource[name]}  # type: ignore[literal-required]
    return {
        "event_id": fields["event_id"],
        "type": fields["type"],
        "occurred_at": event_time(fields["occurred_at"]),
        "agent_key": agent,
        "session_key": session,
        "version": int(fields["version"]),
        "incarnation": fields["s:created_at"],
        "changes": changes,
        "session": resource,
        "actor": fields["actor"],
        "request_id": fields["request_id"],
    }


def consumers(event: Event) -> list[tuple[str, str]]:
    """(actor, queue) of every consumer of this event."""
    if event["type"] == UPDATED:
        return [REPORT, ESCALATE]
    return [REPORT]
