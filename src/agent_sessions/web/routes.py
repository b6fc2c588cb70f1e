"""Every endpoint, declared once in ``ENDPOINTS``: the Starlette routes and ``/openapi.json`` are both
built from this table, so the documented contract is the enforced one.

Each request goes through the same steps in the contract's order (DESIGN.md §2):
authenticate and rate limit in one Redis round trip (401, 429) -> authorize (403) -> path keys,
content type, size and body (400/413/415) -> the service call (404/409/412). Handlers are one service
call each.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent_sessions import models
from agent_sessions.auth import ApiKey, Role, authorize, secret_from_headers
from agent_sessions.errors import InvalidRequest, RateLimited, RequestTooLarge, UnsupportedMediaType
from agent_sessions.events import Origin
from agent_sessions.ratelimit import retry_after
from agent_sessions.reports import Report
from agent_sessions.services import Services, check_path_keys
from agent_sessions.web.errors import JSON, request_id

JSON_TYPES = ("application/json",)


@dataclass
class Call:
    request: Request
    services: Services
    key: ApiKey | None
    body: dict[str, Any]

    @property
    def agent(self) -> str:
        return str(self.request.path_params["agent_key"])

    @property
    def session(self) -> str:
        return str(self.request.path_params["session_key"])

    @property
    def origin(self) -> Origin:
        return Origin(self.key.id if self.key else "anonymous", request_id(self.request))


Handler = Callable[[Call], Awaitable[tuple[int, Any]]]


@dataclass(frozen=True)
class QueryParam:
    name: str
    schema: dict[str, Any]
    description: str


@dataclass(frozen=True)
class Endpoint:
    method: str
    path: str
    handler: Handler
    summary: str
    role: Role | None = None  # None: no API key needed
    any_agent: bool = True  # False: a key limited to some agents may not call it
    body: type[Any] | None = None
    response: type[Any] | None = None
    status: int = 200
    creates: bool = False
    query: tuple[QueryParam, ...] = field(default=())

    @property
    def path_keys(self) -> tuple[str, ...]:
        return tuple(k for k in ("agent_key", "session_key") if "{" + k + "}" in self.path)


# -- query parameters --------------------------------------------------------------------------------

LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "page size")
PAGE_KEY = QueryParam("page_key", {"type": "string"}, "the page_key of the previous page's metadata")
ENABLED = QueryParam("enabled", {"type": "boolean"}, "only enabled (true) or disabled (false) sessions")


def query_limit(request: Request) -> int:
    raw = request.query_params.get("limit", "20")
    if not raw.isdigit() or not 1 <= int(raw) <= 100:
        raise InvalidRequest.for_fields({"limit": "must be an integer from 1 to 100"})
    return int(raw)


def query_enabled(request: Request) -> bool | None:
    raw = request.query_params.get("enabled")
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidRequest.for_fields({"enabled": "must be true or false"})
    return raw == "true"


# -- handlers: one service call each ------------------------------------------------------------------


async def create_agent(c: Call) -> tuple[int, Any]:
    return 201, await c.services.create_agent(c.body)


async def list_agents(c: Call) -> tuple[int, Any]:
    limit, page_key = query_limit(c.request), c.request.query_params.get("page_key")
    if c.key is not None and c.key.agents:
        return 200, await c.services.list_some_agents(c.key.agents)
    return 200, await c.services.list_agents(page_key, limit)


async def get_agent(c: Call) -> tuple[int, Any]:
    return 200, await c.services.get_agent(c.agent)


async def update_agent(c: Call) -> tuple[int, Any]:
    return 200, await c.services.update_agent(c.agent, c.body)


async def delete_agent(c: Call) -> tuple[int, Any]:
    await c.services.delete_agent(c.agent, c.origin)
    return 204, None


async def get_report(c: Call) -> tuple[int, Any]:
    return 200, await c.services.get_report(c.agent)


async def create_session(c: Call) -> tuple[int, Any]:
    return 201, await c.services.create_session(c.agent, c.body, c.origin)


async def list_sessions(c: Call) -> tuple[int, Any]:
    limit, enabled = query_limit(c.request), query_enabled(c.request)
    return 200, await c.services.list_sessions(c.agent, enabled, c.request.query_params.get("page_key"), limit)


async def get_session(c: Call) -> tuple[int, Any]:
    return 200, await c.services.get_session(c.agent, c.session)


async def update_session(c: Call) -> tuple[int, Any]:
    return 200, await c.services.update_session(c.agent, c.session, c.body, c.origin)


async def delete_session(c: Call) -> tuple[int, Any]:
    await c.services.delete_session(c.agent, c.session, c.origin)
    return 204, None


async def healthz(c: Call) -> tuple[int, Any]:
    return 200, {"status": "ok"}


async def readyz(c: Call) -> tuple[int, Any]:
    await c.services.store.ping()
    return 200, {"status": "ok"}


AGENTS = "/v2/agents"
AGENT = "/v2/agents/{agent_key}"
SESSIONS = "/v2/agents/{agent_key}/sessions"
SESSION = "/v2/agents/{agent_key}/sessions/{session_key}"

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        AGENTS,
        create_agent,
        "Create an agent",
        Role.ADMIN,
        any_agent=False,
        body=models.AgentCreate,
        response=models.Agent,
        status=201,
        creates=True,
    ),
    Endpoint(
        "GET",
        AGENTS,
        list_agents,
        "List agents (a key limited to some agents sees those)",
        Role.VIEWER,
        response=models.AgentList,
        query=(LIMIT, PAGE_KEY),
    ),
    Endpoint("GET", AGENT, get_agent, "Get an agent", Role.VIEWER, response=models.Agent),
    Endpoint(
        "PATCH",
        AGENT,
        update_agent,
        "Update an agent",
        Role.ADMIN,
        body=models.AgentPatch,
        response=models.Agent,
    ),
    Endpoint("DELETE", AGENT, delete_agent, "Delete an agent and all its sessions", Role.ADMIN, status=204),
    Endpoint(
        "POST",
        SESSIONS,
        create_session,
        "Create a session",
        Role.EDITOR,
        body=models.SessionCreate,
        response=models.Session,
        status=201,
        creates=True,
    ),
    Endpoint(
        "GET",
        SESSIONS,
        list_sessions,
        "List an agent's sessions",
        Role.VIEWER,
        response=models.SessionList,
        query=(LIMIT, PAGE_KEY, ENABLED),
    ),
    Endpoint("GET", SESSION, get_session, "Get a session", Role.VIEWER, response=models.Session),
    Endpoint(
        "PATCH",
        SESSION,
        update_session,
        "Update a session's description, metadata or enabled flag",
        Role.EDITOR,
        body=models.SessionPatch,
        response=models.Session,
    ),
    Endpoint("DELETE", SESSION, delete_session, "Delete a session", Role.EDITOR, status=204),
    Endpoint(
        "GET",
        f"{AGENT}/report",
        get_report,
        "The agent's aggregates, kept from session events (eventually consistent)",
        Role.VIEWER,
        response=Report,
    ),
    Endpoint("GET", "/healthz", healthz, "Liveness: the process answers", response=models.Health),
    Endpoint("GET", "/readyz", readyz, "Readiness: Redis answers a PING", response=models.Health),
)


# -- the shared request pipeline ---------------------------------------------------------------------


async def read_json_body(request: Request, limit: int) -> bytes:
    media_type = request.headers.get("content-type", "").split(";", 1)[0].strip().lower()
    if media_type not in JSON_TYPES:
        raise UnsupportedMediaType(f"Content-Type must be application/json, not {media_type or 'missing'!r}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise RequestTooLarge(f"request body is larger than {limit} bytes")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


def route(endpoint: Endpoint) -> Route:
    async def handle(request: Request) -> Response:
        state = request.app.state
        key = None
        if endpoint.role is not None:
            secret = secret_from_headers(request.headers.get("x-api-key"), request.headers.get("authorization"))
            address = request.client.host if request.client else "unknown"
            key, quota, allowed = await state.gate.admit(secret, address)
            request.state.response_headers = quota.headers()
            if not allowed:
                raise RateLimited(retry_after(quota.next_token_ms))
            agent = request.path_params.get("agent_key")
            authorize(key, endpoint.role, agent, any_agent=endpoint.any_agent)
        if endpoint.path_keys:
            check_path_keys(request.path_params["agent_key"], request.path_params.get("session_key"))
        body: dict[str, Any] = {}
        if endpoint.body is not None:
            raw = await read_json_body(request, state.settings.max_body_bytes)
            body = models.parse_body(endpoint.body, raw)
        status, payload = await endpoint.handler(Call(request, state.services, key, body))
        if payload is None:
            return Response(status_code=status)
        return Response(orjson.dumps(payload), status, media_type=JSON)

    return Route(endpoint.path, handle, methods=[endpoint.method], name=endpoint.handler.__name__)
