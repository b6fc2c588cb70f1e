"""Webhook endpoints: what they subscribe to, the messages they receive, and their API shapes.

An endpoint receives a message for every event whose type is in its ``event_types`` and whose agent is
in its ``agent_keys`` (null: every agent) committed after its create was answered, and none committed
after its disable or delete was answered (``webhooks.store.Fanout``); a change of its filters holds
from its answer on as well. A message's body is
``{"type", "timestamp", "data"}`` with the event as ``data``; its ``webhook-id`` is the event id, and
for ``session.escalated`` the escalation id ``esc_…`` (the update's id with another prefix), so that
an endpoint taking both an update and the escalation it caused gets two distinct ids.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Field, StringConstraints, WithJsonSchema, with_config
from typing_extensions import TypedDict

from agent_sessions.config import webhook_key
from agent_sessions.events.model import ESCALATED, TYPES, EventDict, EventType
from agent_sessions.sessions.models import AgentKey, Description, Metadata, Timestamp
from agent_sessions.sessions.representations import event_time

SETTINGS_ENDPOINT = "whe_settings"  # ESCALATION_WEBHOOK_URL, as an endpoint for session.escalated
EVENT_TYPES = TYPES
ENDPOINT_ID_PATTERN = "^whe_[0-9a-zA-Z_-]{1,64}$"
MAX_AGENT_KEYS = 100
MAX_GRACE_SECONDS = 7 * 24 * 3600
DEFAULT_GRACE_SECONDS = 24 * 3600

_STRICT = ConfigDict(extra="forbid", strict=True)
Url = Annotated[
    str,
    StringConstraints(pattern="^https?://", max_length=2048),
    WithJsonSchema({"type": "string", "format": "uri", "pattern": "^https?://", "maxLength": 2048}),
]
EventTypes = Annotated[list[EventType], Field(min_length=1, max_length=len(EVENT_TYPES))]
AgentKeys = Annotated[list[AgentKey], Field(min_length=1, max_length=MAX_AGENT_KEYS)] | None
DeliveryStatus = Literal["pending", "delivered", "failed", "dead"]
DELIVERY_STATUSES: tuple[DeliveryStatus, ...] = ("pending", "delivered", "failed", "dead")
# An endpoint's own retry schedule; null (or absent at create): the settings' WEBHOOK_MAX_RETRIES,
# WEBHOOK_MIN_BACKOFF_MS, WEBHOOK_MAX_BACKOFF_MS.
MaxRetries = Annotated[int, Field(ge=0, le=100)] | None
BackoffMs = Annotated[int, Field(ge=1, le=24 * 3600 * 1000)] | None
RETRY_FIELDS = ("max_retries", "min_backoff_ms", "max_backoff_ms")


@with_config(_STRICT)
class WebhookEndpointCreate(TypedDict):
    url: Url
    event_types: EventTypes
    description: NotRequired[Description]
    agent_keys: NotRequired[AgentKeys]  # absent or null: every agent
    enabled: NotRequired[bool]
    metadata: NotRequired[Metadata]
    max_retries: NotRequired[MaxRetries]
    min_backoff_ms: NotRequired[BackoffMs]
    max_backoff_ms: NotRequired[BackoffMs]


@with_config(_STRICT)
class WebhookEndpointPatch(TypedDict, total=False):
    url: Url
    event_types: EventTypes
    description: Description
    agent_keys: AgentKeys
    enabled: bool
    metadata: Metadata
    max_retries: MaxRetries
    min_backoff_ms: BackoffMs
    max_backoff_ms: BackoffMs


@with_config(_STRICT)
class RotateSecret(TypedDict, total=False):
    grace_seconds: Annotated[int, Field(ge=0, le=MAX_GRACE_SECONDS)]


@with_config(_STRICT)
class Recover(TypedDict):
    since: Annotated[str, StringConstraints(max_length=64), WithJsonSchema({"type": "string", "format": "date-time"})]
    page_key: NotRequired[Annotated[str, StringConstraints(max_length=200)]]


class WebhookEndpoint(TypedDict):
    id: str
    url: str
    description: str
    event_types: list[EventType]
    agent_keys: list[str] | None
    enabled: bool
    metadata: Metadata
    max_retries: int | None  # null: the settings' schedule
    min_backoff_ms: int | None
    max_backoff_ms: int | None
    created_at: Timestamp | None
    updated_at: Timestamp | None
    managed_by: Literal["api", "settings"]


class WebhookEndpointWithSecret(WebhookEndpoint):
    secret: str  # shown in this answer only


class WebhookEndpointList(TypedDict):
    webhook_endpoints: list[WebhookEndpoint]


class Delivery(TypedDict):
    event_id: str
    type: EventType
    status: DeliveryStatus
    attempts: int
    last_status_code: int | None
    last_error: str | None
    next_attempt_at: Timestamp | None
    delivered_at: Timestamp | None
    created_at: Timestamp


class Attempt(TypedDict):
    at: Timestamp
    status_code: int | None  # null: no answer (refused, unreachable, timed out)
    error: str | None  # null: delivered (2xx)
    duration_ms: int


class Attempts(TypedDict):
    attempts: list[Attempt]  # oldest first


class TestOutcome(TypedDict):
    id: str  # the webhook-id the test message carried
    status_code: int | None
    error: str | None
    duration_ms: int


class DeliveryPageMetadata(TypedDict):
    page_key: str | None  # not null: send it back for the next (older) page


class DeliveryList(TypedDict):
    deliveries: list[Delivery]
    metadata: DeliveryPageMetadata


class Recovered(TypedDict):
    queued: int  # messages queued (again) for this endpoint
    refused: int  # past the endpoint's backlog bound (WEBHOOK_BACKLOG_MAX)
    oldest_available: Timestamp | None  # the event log's oldest event: nothing older can be recovered
    page_key: str | None  # not null: more of the log remains; send it back to go on


Fields = dict[str, str]  # an endpoint's record as stored


@dataclass(frozen=True)
class Message:
    id: str  # the webhook-id: an event id, or an escalation id
    type: str
    body: bytes


@dataclass(frozen=True)
class Subscription:
    """What an endpoint subscribes to since ``since`` (ms, Redis time of its create or last change of
    event_types, agent_keys or enabled), and before that (``previous``; None before its create)."""

    id: str
    event_types: frozenset[str]
    agents: frozenset[str] | None  # None: every agent
    enabled: bool = True
    since: int = 0
    previous: Subscription | None = None

    def wants(self, event_type: str, agent: str, at: int | None = None) -> bool:
        """Whether an event of ``event_type`` and ``agent`` committed at ``at`` (ms; None: now) is for it."""
        if at is not None and at < self.since:
            return self.previous is not None and self.previous.wants(event_type, agent)
        return self.enabled and event_type in self.event_types and (self.agents is None or agent in self.agents)


SETTINGS_SUBSCRIPTION = Subscription(SETTINGS_ENDPOINT, frozenset({ESCALATED}), None)


def subscription(endpoint: str, fields: Fields) -> Subscription:
    """An endpoint's subscription from its record: the current one and, when it changed, the one before
    (see lua/webhook_endpoint_update.lua). A record made before subscriptions were timed holds always."""
    previous = None
    if fields.get("previous"):
        before = orjson.loads(fields["previous"])
        previous = _subscribed(endpoint, before["event_types"], before["agent_keys"], before["enabled"], 0, None)
    since = int(fields.get("subscribed_at") or 0)
    return _subscribed(endpoint, fields["event_types"], fields["agent_keys"], fields["enabled"], since, previous)


def _subscribed(
    endpoint: str, event_types: str, agent_keys: str, enabled: str, since: int, previous: Subscription | None
) -> Subscription:
    agents = orjson.loads(agent_keys)
    types = frozenset(orjson.loads(event_types))
    return Subscription(endpoint, types, None if agents is None else frozenset(agents), enabled == "1", since, previous)


def event_message(event: EventDict) -> Message:
    body = orjson.dumps({"type": event["type"], "timestamp": event["occurred_at"], "data": event})
    return Message(event["event_id"], event["type"], body)


def escalation_id(event_id: str) -> str:
    return "esc_" + event_id.removeprefix("evt_")


def escalation_message(event_id: str, body: bytes) -> Message:
    return Message(escalation_id(event_id), ESCALATED, body)


def escalation_body(event: EventDict, fired: list[str]) -> bytes:
    """The escalation's body: the update event, with the rule that fired (the first, if several did)."""
    data = {**event, "rule": fired[0], "rules": fired}
    return orjson.dumps({"type": ESCALATED, "timestamp": event["occurred_at"], "data": data})


TEST_TYPE = "webhook.test"  # what POST /v2/webhook_endpoints/{id}/test sends (never an event of the log)


def attempt(stored: dict[str, Any]) -> Attempt:
    return {
        "at": event_time(str(stored["at"])),
        "status_code": stored.get("status_code"),
        "error": stored.get("error"),
        "duration_ms": int(stored.get("duration_ms") or 0),
    }


def signing_keys(fields: Fields, now_ms: int | None = None) -> list[bytes]:
    """The endpoint's secrets in use now (newest first; a rotated one until its grace ends)."""
    now = int(time.time() * 1000) if now_ms is None else now_ms
    found = orjson.loads(fields["secrets"])
    return [webhook_key(s["secret"]) for s in found if int(s["expires_ms"]) == 0 or int(s["expires_ms"]) > now]


def resource(endpoint: str, fields: Fields) -> WebhookEndpoint:
    return {
        "id": endpoint,
        "url": fields["url"],
        "description": fields.get("description", ""),
        "event_types": orjson.loads(fields["event_types"]),
        "agent_keys": orjson.loads(fields["agent_keys"]),
        "enabled": fields["enabled"] == "1",
        "metadata": orjson.loads(fields.get("metadata", "{}")),
        "max_retries": _int(fields.get("max_retries")),
        "min_backoff_ms": _int(fields.get("min_backoff_ms")),
        "max_backoff_ms": _int(fields.get("max_backoff_ms")),
        "created_at": event_time(fields["created_at"]),
        "updated_at": event_time(fields["updated_at"]),
        "managed_by": "api",
    }


def settings_resource(url: str) -> WebhookEndpoint:
    escalated: EventType = "session.escalated"
    return {
        "id": SETTINGS_ENDPOINT,
        "url": url,
        "description": "ESCALATION_WEBHOOK_URL, configured by the settings",
        "event_types": [escalated],
        "agent_keys": None,
        "enabled": True,
        "metadata": {},
        "max_retries": None,
        "min_backoff_ms": None,
        "max_backoff_ms": None,
        "created_at": None,
        "updated_at": None,
        "managed_by": "settings",
    }


def delivery(row: dict[str, Any]) -> Delivery:
    return {
        "event_id": row["id"],
        "type": row["type"],
        "status": row["status"],
        "attempts": int(row["attempts"]),
        "last_status_code": row.get("last_status_code"),
        "last_error": row.get("last_error"),
        "next_attempt_at": _time(row.get("next_attempt_at")),
        "delivered_at": _time(row.get("delivered_at")),
        "created_at": event_time(row["created_at"]),
    }


def _int(stored: str | None) -> int | None:
    return int(stored) if stored else None


def _time(ms: str | None) -> str | None:
    return None if ms is None else event_time(ms)
