"""Session events: what the write scripts put in the outbox, and what consumers receive.

An event (README, "Events")::

    {"event_id": "evt_…", "type": "session.updated", "occurred_at": "…Z", "agent_key": "agt_…",
     "session_key": "ase_…", "version": 7, "changes": {"metadata": {"old": {…}, "new": {…}}},
     "session": {full session after the change}, "actor": "<key id>", "request_id": "req_…"}

``session.escalated`` (``escalation_event``) is the update that escalated, with the rules that fired
(``rule``, ``rules``) and the update's id (``update_event_id``), under an id of its own.
``changes`` holds each changed field's old and new value (``session.updated``; empty for created and
deleted and expired). ``incarnation`` (the session's creation time in milliseconds) tells apart the lifetimes of a
session key that was deleted and created again. For ``session.deleted`` and ``session.expired``,
``session`` is the last state and ``version`` is one past it.
Delivery is at least once: consumers dedupe on ``event_id`` (equivalently, on agent, session and
version, which identify an event just as uniquely).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, NotRequired, get_args

import orjson
from typing_extensions import TypedDict

from agent_sessions.ids import new_id
from agent_sessions.sessions.models import Change, Session, Timestamp
from agent_sessions.sessions.representations import event_time, session_resource, stored_value

# Every event type (spelled once, in ``EventType``). session.expired: deleted by the workers
# after its time-to-idle (actor "system"); session.escalated: an update that fired escalation rules.
EventType = Literal["session.created", "session.updated", "session.deleted", "session.expired", "session.escalated"]


class Event(TypedDict):
    """A committed change (README, "Events"): the same body the Dramatiq consumers and webhooks get."""

    event_id: str
    type: EventType
    occurred_at: Timestamp
    agent_key: str
    session_key: str
    version: int
    incarnation: str
    changes: dict[str, Change]
    session: Session
    actor: str
    request_id: str
    # session.escalated only: the rule that fired (the first, if several did), all of them, and the
    # update that escalated (its event_id; ``version`` is the session's version it made)
    rule: NotRequired[str]
    rules: NotRequired[list[str]]
    update_event_id: NotRequired[str]


class EventPageMetadata(TypedDict):
    next_cursor: str
    has_more: bool


class EventList(TypedDict):
    events: list[Event]
    metadata: EventPageMetadata


TYPES: tuple[EventType, ...] = get_args(EventType)
CREATED, UPDATED, DELETED, EXPIRED, ESCALATED = TYPES

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


EventDict = dict[str, Any]  # an event as the pipeline handles it (its shape: ``Event``)


def event_from_entry(fields: dict[str, str]) -> EventDict:
    """An outbox stream entry (written by ``emit_event`` in lua/_change.lua, or by
    lua/escalation_record.lua) -> the event consumers receive."""
    if fields["type"] == ESCALATED:
        return escalation_event(fields)
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


def escalation_event(fields: dict[str, str]) -> EventDict:
    """A ``session.escalated`` event: the update that escalated (the webhook body's ``data``, with
    ``rule`` and ``rules``) under the escalation's own ``event_id`` (``esc_…``), type and time (when it
    was recorded), with the update's id as ``update_event_id``."""
    update: EventDict = orjson.loads(fields["body"])["data"]
    return {
        **update,
        "event_id": fields["event_id"],
        "type": ESCALATED,
        "occurred_at": event_time(fields["occurred_at"]),
        "update_event_id": update["event_id"],
    }


def consumers(event: EventDict) -> list[tuple[str, str]]:
    """(actor, queue) of every consumer of this event (an escalation is the escalation actor's own
    output: it reaches the event log, and its webhooks are queued where it is recorded)."""
    if event["type"] == UPDATED:
        return [REPORT, ESCALATE]
    if event["type"] == ESCALATED:
        return []
    return [REPORT]
