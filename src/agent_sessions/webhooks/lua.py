"""The Lua scripts of webhooks: each one's KEYS and ARGV, by name and in order (``redis.scripts.declare``;
the script's header says the same)."""

from __future__ import annotations

from typing_extensions import TypedDict

from agent_sessions.redis.keys import DeliveryKeys
from agent_sessions.redis.scripts import Arg, NoArgs, declare


class RulesPutKeys(TypedDict):
    agent: str
    rules: str


class RulesPutArgs(TypedDict):
    rules: Arg


RULES_PUT = declare("rules_put", RulesPutKeys, RulesPutArgs)


class WebhookEndpointCreateKeys(TypedDict):
    endpoint: str


WEBHOOK_ENDPOINT_CREATE = declare("webhook_endpoint_create", WebhookEndpointCreateKeys, NoArgs, more_args="fields")


class WebhookEndpointUpdateKeys(TypedDict):
    endpoint: str


WEBHOOK_ENDPOINT_UPDATE = declare("webhook_endpoint_update", WebhookEndpointUpdateKeys, NoArgs, more_args="changes")


class WebhookSecretRotateKeys(TypedDict):
    endpoint: str


class WebhookSecretRotateArgs(TypedDict):
    new_secret: Arg
    grace_ms: Arg
    max_secrets: Arg


WEBHOOK_SECRET_ROTATE = declare("webhook_secret_rotate", WebhookSecretRotateKeys, WebhookSecretRotateArgs)


class DeliveryEnqueueKeys(DeliveryKeys):
    endpoint: str
    attempts: str


class DeliveryEnqueueArgs(TypedDict):
    id: Arg
    type: Arg
    body: Arg
    backlog_max: Arg
    log_max: Arg
    check_endpoint: Arg
    force: Arg


WEBHOOK_ENDPOINT_DELETE = declare("webhook_endpoint_delete", DeliveryEnqueueKeys, NoArgs)

DELIVERY_ENQUEUE = declare("delivery_enqueue", DeliveryEnqueueKeys, DeliveryEnqueueArgs)


class DeliveryClaimKeys(TypedDict):
    queue: str
    bodies: str
    endpoint: str


class DeliveryClaimArgs(TypedDict):
    lease_ms: Arg
    count: Arg


DELIVERY_CLAIM = declare("delivery_claim", DeliveryClaimKeys, DeliveryClaimArgs)


class DeliveryResultKeys(DeliveryKeys):
    attempts: str


class DeliveryResultArgs(TypedDict):
    id: Arg
    outcome: Arg
    status_code: Arg
    error: Arg
    tries: Arg
    min_backoff_ms: Arg
    max_backoff_ms: Arg
    duration_ms: Arg
    attempts_kept: Arg


DELIVERY_RESULT = declare("delivery_result", DeliveryResultKeys, DeliveryResultArgs)


class DeliveriesPageKeys(TypedDict):
    log: str
    rows: str


class DeliveriesPageArgs(TypedDict):
    before: Arg
    limit: Arg


DELIVERIES_PAGE = declare("deliveries_page", DeliveriesPageKeys, DeliveriesPageArgs)
