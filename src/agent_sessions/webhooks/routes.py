"""The endpoints of webhook endpoints, their deliveries and the agents' escalation rules, declared like
every other (``framework.Endpoint``): one service call each (``webhooks.services``).

Webhook endpoints are admin resources, and not for keys limited to some agents: an endpoint may
receive every agent's events. An agent's escalation rules are read by viewers and changed by admins,
with the agent scope of any session resource.
"""

from __future__ import annotations

from typing import Any

from agent_sessions.access.auth import Role
from agent_sessions.errors import (
    DeliveryNotFound,
    EventGone,
    InvalidRequest,
    LimitReached,
    ManagedBySettings,
    ServiceError,
    WebhookEndpointNotFound,
)
from agent_sessions.escalations import rules
from agent_sessions.sessions.routes import AGENT
from agent_sessions.web.framework import LIMIT, Call, Endpoint, QueryParam, query_limit
from agent_sessions.webhooks import model as ep
from agent_sessions.webhooks.services import WebhookServices, check_endpoint_id

ENDPOINTS_PATH = "/v2/webhook_endpoints"
CHANGE = (WebhookEndpointNotFound, ManagedBySettings)  # whe_settings is changed through the settings
ENDPOINT = "/v2/webhook_endpoints/{endpoint_id}"
STATUS = QueryParam("status", {"type": "string", "enum": list(ep.DELIVERY_STATUSES)}, "only deliveries in this status")
DELIVERY_PAGE_KEY = QueryParam("page_key", {"type": "string", "pattern": "^[0-9]{1,16}$"}, "from a previous page")


def services(c: Call) -> WebhookServices:
    found: WebhookServices = c.request.app.state.webhooks
    return found


def endpoint_id(c: Call) -> str:
    endpoint = str(c.request.path_params["endpoint_id"])
    check_endpoint_id(endpoint)
    return endpoint


async def create_webhook_endpoint(c: Call) -> tuple[int, Any]:
    return 201, await services(c).create(c.body)


async def list_webhook_endpoints(c: Call) -> tuple[int, Any]:
    return 200, await services(c).list_endpoints()


async def get_webhook_endpoint(c: Call) -> tuple[int, Any]:
    return 200, await services(c).get(endpoint_id(c))


async def update_webhook_endpoint(c: Call) -> tuple[int, Any]:
    return 200, await services(c).update(endpoint_id(c), c.body)


async def delete_webhook_endpoint(c: Call) -> tuple[int, Any]:
    await services(c).delete(endpoint_id(c))
    return 204, None


async def rotate_webhook_secret(c: Call) -> tuple[int, Any]:
    return 200, await services(c).rotate(endpoint_id(c), c.body)


async def list_deliveries(c: Call) -> tuple[int, Any]:
    params = c.request.query_params
    status = next((s for s in ep.DELIVERY_STATUSES if s == params.get("status")), None)
    if status is None and "status" in params:
        raise InvalidRequest.for_fields({"status": "one of " + ", ".join(ep.DELIVERY_STATUSES)})
    found = await services(c).deliveries(endpoint_id(c), status, params.get("page_key"), query_limit(c.request))
    return 200, found


async def redeliver(c: Call) -> tuple[int, Any]:
    return 202, await services(c).redeliver(endpoint_id(c), str(c.request.path_params["event_id"]))


async def delivery_attempts(c: Call) -> tuple[int, Any]:
    return 200, await services(c).attempts(endpoint_id(c), str(c.request.path_params["event_id"]))


async def send_test(c: Call) -> tuple[int, Any]:
    return 200, await services(c).test(endpoint_id(c))


async def recover(c: Call) -> tuple[int, Any]:
    return 202, await services(c).recover(endpoint_id(c), c.body)


async def get_escalation_rules(c: Call) -> tuple[int, Any]:
    return 200, await services(c).get_rules(c.agent)


async def put_escalation_rules(c: Call) -> tuple[int, Any]:
    return 200, await services(c).put_rules(c.agent, c.body)


async def test_escalation_rules(c: Call) -> tuple[int, Any]:
    return 200, await services(c).test_rules(c.agent, c.body)


def admin(
    method: str,
    path: str,
    handler: Any,
    summary: str,
    raises: tuple[type[ServiceError], ...] = (WebhookEndpointNotFound,),
    **more: Any,
) -> Endpoint:
    return Endpoint(method, path, handler, summary, Role.ADMIN, any_agent=False, raises=raises, **more)


ENDPOINTS: tuple[Endpoint, ...] = (
    admin(
        "POST",
        ENDPOINTS_PATH,
        create_webhook_endpoint,
        "Create a webhook endpoint (its signing secret is in this answer only)",
        body=ep.WebhookEndpointCreate,
        response=ep.WebhookEndpointWithSecret,
        status=201,
        raises=(LimitReached,),
    ),
    admin("GET", ENDPOINTS_PATH, list_webhook_endpoints, "List webhook endpoints", response=ep.WebhookEndpointList),
    admin("GET", ENDPOINT, get_webhook_endpoint, "Get a webhook endpoint", response=ep.WebhookEndpoint),
    admin(
        "PATCH",
        ENDPOINT,
        update_webhook_endpoint,
        "Change a webhook endpoint",
        body=ep.WebhookEndpointPatch,
        response=ep.WebhookEndpoint,
        raises=CHANGE,
    ),
    admin(
        "DELETE",
        ENDPOINT,
        delete_webhook_endpoint,
        "Delete a webhook endpoint and its delivery log",
        status=204,
        raises=CHANGE,
    ),
    admin(
        "POST",
        f"{ENDPOINT}/rotate_secret",
        rotate_webhook_secret,
        "A new signing secret (in this answer only); the old one also signs for grace_seconds (default 1 day)",
        body=ep.RotateSecret,
        response=ep.WebhookEndpointWithSecret,
        raises=CHANGE,
    ),
    admin(
        "GET",
        f"{ENDPOINT}/deliveries",
        list_deliveries,
        "The endpoint's deliveries, newest first, one row per message",
        response=ep.DeliveryList,
        query=(STATUS, LIMIT, DELIVERY_PAGE_KEY),
    ),
    admin(
        "POST",
        f"{ENDPOINT}/deliveries/{{event_id}}/redeliver",
        redeliver,
        "Send one message again, with a fresh retry schedule",
        response=ep.Delivery,
        status=202,
        raises=(WebhookEndpointNotFound, DeliveryNotFound, LimitReached, EventGone),
    ),
    admin(
        "GET",
        f"{ENDPOINT}/deliveries/{{event_id}}/attempts",
        delivery_attempts,
        "Every attempt of one delivery, oldest first (redeliveries add to them)",
        response=ep.Attempts,
        raises=(WebhookEndpointNotFound, DeliveryNotFound),
    ),
    admin(
        "POST",
        f"{ENDPOINT}/test",
        send_test,
        "Send a signed webhook.test message to the endpoint now, and answer how the attempt went",
        response=ep.TestOutcome,
    ),
    admin(
        "POST",
        f"{ENDPOINT}/recover",
        recover,
        "Send again every event since a time that the endpoint subscribes to, from the event log",
        body=ep.Recover,
        response=ep.Recovered,
        status=202,
    ),
    Endpoint(
        "GET",
        f"{AGENT}/escalation_rules",
        get_escalation_rules,
        "The agent's escalation rules (source: agent), or the settings' defaults it uses (source: settings)",
        Role.VIEWER,
        response=rules.AgentRules,
    ),
    Endpoint(
        "PUT",
        f"{AGENT}/escalation_rules",
        put_escalation_rules,
        "Replace the agent's escalation rules (an empty list: no update of this agent escalates)",
        Role.ADMIN,
        body=rules.RulesBody,
        response=rules.AgentRules,
    ),
    Endpoint(
        "POST",
        f"{AGENT}/escalation_rules/test",
        test_escalation_rules,
        "Which of the agent's rules a change of metadata from old to new fires (nothing is stored)",
        Role.VIEWER,
        body=rules.RulesTestBody,
        response=rules.Fired,
    ),
)
