"""Every endpoint, declared once in ``ENDPOINTS``: the Starlette routes and ``/openapi.json`` are both
built from this table, so the documented contract is the enforced one.

Each request goes through the same steps in the contract's order (README, "Errors"):
authenticate and rate limit in one Redis round trip (401, 429) -> authorize (403) -> path keys,
content type, size and body (400/413/415) -> the service call (404/409/412). Handlers are one service
call each. The PATCH of a session, by a key this process knows, takes one round trip in all: the update
script runs the gate first (``read_then_admit_in_the_write``), with the same errors in the same order.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import orjson
from starlette.requests import ClientDisconnect, Request

from agent_sessions import feed, filters, models, tokens
from agent_sessions.auth import (
    SECRET_RE,
    TOKENS_AGENT,
    TOKENS_NONE,
    TOKENS_SESSION,
    ApiKey,
    Role,
    authorize,
    digest,
    presented,
)
from agent_sessions.errors import (
    AgentNotFound,
    CursorExpired,
    EventNotFound,
    Forbidden,
    IndexNotReady,
    InvalidRequest,
    PreconditionFailed,
    RateLimited,
    RequestTooLarge,
    ServiceError,
    Unauthorized,
    UnsupportedMediaType,
)
from agent_sessions.events import Origin
from agent_sessions.ratelimit import Admission, Quota, retry_after
from agent_sessions.redis.store import Idempotency
from agent_sessions.reports import Report
from agent_sessions.services import (
    PAGE_KEY_MAX_LENGTH,
    SESSION_PAGE_KEY_PATTERN,
    SORTS,
    Search,
    Services,
    check_path_keys,
)
from agent_sessions.tokens import Credential
from agent_sessions.web.errors import JSON, request_id
from agent_sessions.web.stream import EventStream

JSON_TYPE, MERGE_PATCH_TYPE = "application/json", "application/merge-patch+json"
JSON_BYTES = JSON.encode()
IDEMPOTENCY_KEY_RE = re.compile(r"[\x20-\x7e]{1,255}")
ETAG_RE = re.compile(r'"([^"]*)"')
DIGITS_RE = re.compile(r"[0-9]+")  # ASCII digits: str.isdigit() also takes "²", which int() refuses


@dataclass
class Call:
    request: Request
    services: Services
    key: ApiKey | None
    body: dict[str, Any]
    merge: bool = False
    if_match: str = ""
    idem: Idempotency | None = None
    admission: Admission | None = None  # the write script is to admit the request (one round trip)
    replayed: bool = False
    key_id: str | None = None  # for the access log, once the key is known
    credential: Credential | None = None
    response_headers: list[tuple[str, str]] = field(default_factory=list)  # the rate limit's, for any answer

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
    etag: bool = False  # the response is one session: ETag "<version>"
    conditional: bool = False  # honours If-Match
    idempotent: bool = False  # honours Idempotency-Key
    merge_patch: bool = False  # also takes application/merge-patch+json
    admits_in_write: bool = False  # the write script runs the gate itself for keys already known
    raises: tuple[type[ServiceError], ...] = ()  # errors beyond those the other fields imply (/openapi.json)
    tokens: str = TOKENS_NONE  # what client tokens may do here: nothing, act on their agent, or their session
    url_tokens: bool = False  # a client token may come as ?access_token= (the event log: EventSource)
    media_type: str = JSON  # of the success response

    @cached_property
    def accepted(self) -> tuple[str, ...]:
        return (JSON_TYPE, MERGE_PATCH_TYPE) if self.merge_patch else (JSON_TYPE,)

    @cached_property
    def path_keys(self) -> tuple[str, ...]:
        return tuple(k for k in ("agent_key", "session_key") if "{" + k + "}" in self.path)

    @cached_property
    def path_params(self) -> tuple[str, ...]:
        return tuple(re.findall(r"{(\w+)}", self.path))


# -- query parameters --------------------------------------------------------------------------------

LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "page size")


def page_key_param(pattern: str) -> QueryParam:
    schema = {"type": "string", "pattern": pattern, "maxLength": models.KEY_MAX_LENGTH}
    return QueryParam("page_key", schema, "metadata.page_key of the previous page (start after it)")


AGENT_PAGE_KEY = page_key_param(models.AGENT_KEY_PATTERN)
VERSION_PAGE_KEY = page_key_param("^[1-9][0-9]{0,17}$")
ENABLED = QueryParam("enabled", {"type": "boolean"}, "only enabled (true) or disabled (false) sessions")
SESSION_SEARCH_PAGE_KEY = QueryParam(
    "page_key",
    {"type": "string", "pattern": SESSION_PAGE_KEY_PATTERN, "maxLength": PAGE_KEY_MAX_LENGTH},
    "metadata.page_key of the previous page (start after it), with the same sort and filter",
)
METADATA_FILTER = QueryParam(
    "metadata_filter",
    {"type": "string", "maxLength": filters.MAX_CHARS},
    "only sessions whose metadata makes this expression true, e.g. priority = 'urgent' AND tier >= 2 "
    "(the README has the grammar)",
)
SORT = QueryParam(
    "sort",
    {"type": "string", "enum": list(SORTS), "default": "key"},
    "the order: by session key (default), created_at or updated_at; '-' for newest first",
)
AGENT_FILTER = QueryParam(
    "agent_key",
    {"type": "string", "pattern": models.AGENT_KEY_PATTERN, "maxLength": models.KEY_MAX_LENGTH},
    "only this agent's events",
)
SESSION_FILTER = QueryParam(
    "session_key",
    {"type": "string", "pattern": models.SESSION_KEY_PATTERN, "maxLength": models.KEY_MAX_LENGTH},
    "only events of sessions with this key",
)
TYPE_RE = "session\\.(created|updated|deleted|expired|escalated)"
TYPES = QueryParam(
    "types",
    {"type": "string", "pattern": f"^{TYPE_RE}(,{TYPE_RE})*$"},
    "only these event types, comma-separated",
)
AFTER = QueryParam(
    "after", {"type": "string", "maxLength": 200}, "a cursor (metadata.next_cursor, or an SSE id): start after it"
)
EVENT_LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 1000, "default": 100}, "page size")
WAIT = QueryParam(
    "wait",
    {"type": "integer", "minimum": 0, "maximum": 30, "default": 0},
    "seconds to wait for a matching event when there is none yet (long poll)",
)
EVENT_FILTERS = (AGENT_FILTER, SESSION_FILTER, TYPES)
ACCESS_TOKEN = QueryParam(
    "access_token",
    {"type": "string", "pattern": "^act_", "maxLength": 4096},
    "a client token (act_...), for clients that cannot send headers (EventSource); never an API key",
)


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not DIGITS_RE.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest.for_fields({name: f"must be an integer from {low} to {high}"})
    return int(raw)


def query_limit(request: Request) -> int:
    return query_int(request, "limit", 20, 1, 100)


def event_filter(c: Call) -> feed.EventFilter:
    """The filters of an event query, within the key's scope: a key limited to some agents sees only
    theirs, and naming another agent is 403."""
    params, key = c.request.query_params, c.key
    agent, session, types = params.get("agent_key"), params.get("session_key"), params.get("types")
    errors = {}
    if agent is not None and (len(agent) > models.KEY_MAX_LENGTH or not models.AGENT_KEY_RE.fullmatch(agent)):
        errors["agent_key"] = f"must match {models.AGENT_KEY_PATTERN}"
    if session is not None and (len(session) > models.KEY_MAX_LENGTH or not models.SESSION_KEY_RE.fullmatch(session)):
        errors["session_key"] = f"must match {models.SESSION_KEY_PATTERN}"
    wanted = tuple(types.split(",")) if types is not None else ()
    if any(t not in feed.EVENT_TYPES for t in wanted) or (types is not None and not wanted):
        errors["types"] = "a comma-separated list of " + ", ".join(feed.EVENT_TYPES)
    if errors:
        raise InvalidRequest.for_fields(errors)
    scope = key.agents if key is not None else ()
    if agent is not None:
        if key is not None:
            authorize(key, Role.VIEWER, agent, tokens=TOKENS_SESSION)
        scope = (agent,)
    if key is not None and key.session is not None:  # a client token of one session: its events only
        if session is not None and session != key.session:
            raise Forbidden("this client token is limited to another session")
        session = key.session
    return feed.EventFilter(scope, session or "", wanted)


def event_start(c: Call, header_value: str | None = None) -> str:
    """The entry id to start after: from ``after`` (or ``Last-Event-ID``); "" for the oldest retained."""
    cursor = header_value or c.request.query_params.get("after")
    return feed.decode_cursor(cursor) if cursor is not None else ""


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
    session, c.replayed = await c.services.create_session(c.agent, c.body, c.origin, c.idem)
    return 201, session


def session_search(request: Request) -> Search:
    params = request.query_params
    sort = params.get("sort", "key")
    if sort not in SORTS:
        raise InvalidRequest.for_fields({"sort": "one of " + ", ".join(SORTS)})
    return Search(params.get("metadata_filter"), sort, query_enabled(request), params.get("page_key"))


async def list_sessions(c: Call) -> tuple[int, Any]:
    return 200, await c.services.list_sessions(c.agent, session_search(c.request), query_limit(c.request))


async def count_sessions(c: Call) -> tuple[int, Any]:
    return 200, await c.services.count_sessions(c.agent, session_search(c.request))


async def get_session(c: Call) -> tuple[int, Any]:
    return 200, await c.services.get_session(c.agent, c.session)


async def update_session(c: Call) -> tuple[int, Any]:
    try:
        session, c.replayed = await c.services.update_session(
            c.agent, c.session, c.body, c.origin, merge=c.merge, if_match=c.if_match, idem=c.idem, admission=c.admission
        )
    except PreconditionFailed as exc:
        exc.messages = [precondition_message(header(c.request, "if-match") or "", exc.current_version)]
        raise
    return 200, session


def precondition_message(sent: str, current: int | None) -> str:
    """Why If-Match did not match: which tags were compared with which version."""
    now = f'the current version "{current}"' if current is not None else "the current version"
    tags = [part.strip() for part in sent.split(",") if part.strip()]
    strong = [tag for tag in tags if ETAG_RE.fullmatch(tag) and DIGITS_RE.fullmatch(tag[1:-1])]
    weak = [tag for tag in tags if tag.startswith("W/")]
    other = [tag for tag in tags if tag not in strong and tag not in weak]
    said = [f"If-Match {', '.join(strong)} does not match {now}"] if strong else []
    if weak:
        said.append(f"weak tags ({', '.join(weak)}) never match: If-Match uses strong comparison")
    if other:
        example = other[0].strip('"')
        said.append(
            f"{', '.join(other)} is not an entity tag of this API: send the version in double quotes, "
            f'e.g. If-Match: "{example if DIGITS_RE.fullmatch(example) else 1}"'
        )
    return "; ".join(said) or f"If-Match does not match {now}"


async def session_history(c: Call) -> tuple[int, Any]:
    limit, page_key = query_limit(c.request), c.request.query_params.get("page_key")
    return 200, await c.services.history(c.agent, c.session, page_key, limit)


async def delete_session(c: Call) -> tuple[int, Any]:
    await c.services.delete_session(c.agent, c.session, c.origin)
    return 204, None


async def known_agent(c: Call, where: feed.EventFilter) -> None:
    """An event query naming one agent: 404 when no such agent exists (checked after the key's scope)."""
    if "agent_key" in c.request.query_params:
        await c.services.get_agent(where.agents[0])


async def list_events(c: Call) -> tuple[int, Any]:
    where, after = event_filter(c), event_start(c)
    await known_agent(c, where)
    limit, wait = query_int(c.request, "limit", 100, 1, 1000), query_int(c.request, "wait", 0, 0, 30)
    return 200, await feed.list_events(c.request.app.state.feed, where, after, limit, wait)


async def get_event(c: Call) -> tuple[int, Any]:
    event_id = str(c.request.path_params["event_id"])
    scope = c.key.agents if c.key is not None else ()
    event = (
        await feed.get_event(c.request.app.state.feed.events, event_id, scope)
        if EVENT_ID_RE.fullmatch(event_id)
        else None
    )
    if event is None or (c.key is not None and c.key.session not in (None, event["session_key"])):
        raise EventNotFound()
    return 200, event


async def create_client_token(c: Call) -> tuple[int, Any]:
    signer: tokens.Signer | None = c.request.app.state.tokens
    assert c.key is not None and c.credential is not None
    if signer is None:
        raise Forbidden("client tokens are not enabled on this server: an operator sets CLIENT_TOKENS=true")
    return 201, await c.services.mint_token(signer, c.key, c.credential.digest, c.body)


async def stream_events(c: Call) -> tuple[int, Any]:
    where = event_filter(c)
    await known_agent(c, where)
    live = c.request.app.state.feed
    last_event_id = header(c.request, "last-event-id")
    start = event_start(c, last_event_id) if last_event_id or "after" in c.request.query_params else None
    if start is None:
        start = await live.events.end()  # no position given: from now on
    elif start:
        await live.events.check(start)  # 410 now, as a status, not once the stream has begun
    owner = c.key.id if c.key is not None else ""
    return 200, EventStream(live, where, start, c.request.app.state.settings.sse_heartbeat_seconds, owner)


async def healthz(c: Call) -> tuple[int, Any]:
    return 200, {"status": "ok"}


async def readyz(c: Call) -> tuple[int, Any]:
    await c.services.store.ping()
    return 200, {"status": "ok"}


EVENT_ID_RE = re.compile(r"(evt|esc)_[A-Za-z0-9_-]{1,80}")  # an event, or an escalation
AGENTS = "/v2/agents"
AGENT = "/v2/agents/{agent_key}"
SESSIONS = "/v2/agents/{agent_key}/sessions"
SESSION = "/v2/agents/{agent_key}/sessions/{session_key}"
SESSION_COUNT = "/v2/agents/{agent_key}/sessions/count"

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
        query=(LIMIT, AGENT_PAGE_KEY),
    ),
    Endpoint("GET", AGENT, get_agent, "Get an agent", Role.VIEWER, response=models.Agent, tokens=TOKENS_AGENT),
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
        etag=True,
        idempotent=True,
        tokens=TOKENS_AGENT,
    ),
    Endpoint(
        "GET",
        SESSIONS,
        list_sessions,
        "List an agent's sessions",
        Role.VIEWER,
        response=models.SessionList,
        query=(LIMIT, SESSION_SEARCH_PAGE_KEY, ENABLED, METADATA_FILTER, SORT),
        raises=(IndexNotReady,),
        tokens=TOKENS_AGENT,
    ),
    Endpoint(
        "GET",
        SESSION_COUNT,
        count_sessions,
        "Count an agent's sessions (with page_key: a count to continue, for very large agents)",
        Role.VIEWER,
        response=models.SessionCount,
        query=(SESSION_SEARCH_PAGE_KEY, ENABLED, METADATA_FILTER),
        tokens=TOKENS_AGENT,
    ),
    Endpoint(
        "GET",
        SESSION,
        get_session,
        "Get a session",
        Role.VIEWER,
        response=models.Session,
        etag=True,
        tokens=TOKENS_SESSION,
    ),
    Endpoint(
        "GET",
        f"{SESSION}/history",
        session_history,
        "A session's changes, newest first",
        Role.VIEWER,
        response=models.History,
        query=(LIMIT, VERSION_PAGE_KEY),
        tokens=TOKENS_SESSION,
    ),
    Endpoint(
        "PATCH",
        SESSION,
        update_session,
        "Update a session's description, metadata or enabled flag",
        Role.EDITOR,
        body=models.SessionPatch,
        response=models.Session,
        etag=True,
        conditional=True,
        idempotent=True,
        merge_patch=True,
        admits_in_write=True,
        tokens=TOKENS_SESSION,
    ),
    Endpoint("DELETE", SESSION, delete_session, "Delete a session", Role.EDITOR, status=204, tokens=TOKENS_AGENT),
    Endpoint(
        "GET",
        f"{AGENT}/report",
        get_report,
        "The agent's aggregates, kept from session events (eventually consistent)",
        Role.VIEWER,
        response=Report,
        tokens=TOKENS_AGENT,
    ),
    Endpoint(
        "GET",
        "/v2/events",
        list_events,
        "The event log, in commit order, from a cursor (a key limited to some agents sees theirs)",
        Role.VIEWER,
        response=models.EventList,
        query=(*EVENT_FILTERS, AFTER, EVENT_LIMIT, WAIT, ACCESS_TOKEN),
        raises=(AgentNotFound, CursorExpired),
        tokens=TOKENS_SESSION,
        url_tokens=True,
    ),
    Endpoint(
        "GET",
        "/v2/events/stream",
        stream_events,
        "The event log as Server-Sent Events: what is after Last-Event-ID (or after), then live",
        Role.VIEWER,
        query=(*EVENT_FILTERS, AFTER, ACCESS_TOKEN),
        raises=(AgentNotFound, CursorExpired),
        media_type="text/event-stream",
        tokens=TOKENS_SESSION,
        url_tokens=True,
    ),
    Endpoint(
        "GET",
        "/v2/events/{event_id}",
        get_event,
        "One event of the log",
        Role.VIEWER,
        response=models.Event,
        raises=(EventNotFound,),
        tokens=TOKENS_SESSION,
    ),
    Endpoint(
        "POST",
        "/v2/client_tokens",
        create_client_token,
        "Mint a short-lived client token for a browser page: one agent (and optionally one of its sessions),"
        " a role no higher than the minting key's",
        Role.VIEWER,
        body=models.ClientTokenCreate,
        response=models.ClientTokenCreated,
        status=201,
        raises=(AgentNotFound,),
    ),
    Endpoint("GET", "/healthz", healthz, "Liveness: the process answers", response=models.Health),
    Endpoint("GET", "/readyz", readyz, "Readiness: Redis answers a PING", response=models.Health),
)


# -- the shared request pipeline ---------------------------------------------------------------------


def header(request: Request, name: str) -> str | None:
    """A request header (the first, if repeated), from a dict made once per request: Starlette's
    ``headers.get`` scans the list, and raises and catches a KeyError for every absent header."""
    scope = request.scope
    found: dict[str, str] | None = scope.get("agent_sessions.headers")
    if found is None:
        found = {k.decode("latin-1"): v.decode("latin-1") for k, v in reversed(scope["headers"])}
        scope["agent_sessions.headers"] = found
    return found.get(name)


def media_type(request: Request) -> str:
    return (header(request, "content-type") or "").split(";", 1)[0].strip().lower()


async def read_body(request: Request, limit: int, accepted: tuple[str, ...]) -> tuple[bytes, str]:
    """The body and its media type (one of ``accepted``), within ``limit`` bytes. A client that sends it
    too slowly is cut off by the HTTP protocol's read timeout (``web/protocol.py``)."""
    media = media_type(request)
    if media not in accepted:
        raise UnsupportedMediaType(f"Content-Type must be {' or '.join(accepted)}, not {media or 'missing'!r}")
    encoding = (header(request, "content-encoding") or "identity").strip().lower()
    if encoding != "identity":
        raise UnsupportedMediaType(f"Content-Encoding {encoding!r} is not supported; send the body uncompressed")
    declared = header(request, "content-length") or ""
    if DIGITS_RE.fullmatch(declared) and int(declared) > limit:
        raise RequestTooLarge(f"request body is larger than {limit} bytes")
    chunks, size, more = [], 0, True
    receive = request.receive
    while more:  # ASGI messages straight (Starlette's stream() is an async generator per request)
        message = await receive()
        if message["type"] != "http.request":
            raise ClientDisconnect()
        chunk, more = message.get("body", b""), message.get("more_body", False)
        size += len(chunk)
        if size > limit:
            raise RequestTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks), media


def bodiless(request: Request) -> bool:
    """The request says it has no body (no Content-Length, or 0, and no Transfer-Encoding)."""
    return header(request, "content-length") in (None, "0") and header(request, "transfer-encoding") is None


def parse_if_match(value: str | None) -> str:
    """If-Match -> "" (absent), "*" or the versions it lists. Weak tags (W/"3") never match (RFC 9110
    strong comparison), and neither does a malformed header: both give a value no version equals."""
    if value is None:
        return ""
    if value.strip() == "*":
        return "*"
    tags = [part.strip() for part in value.split(",")]
    versions = [m.group(1) for tag in tags if (m := ETAG_RE.fullmatch(tag)) and DIGITS_RE.fullmatch(m.group(1))]
    return ",".join(versions) or "-"


def idempotency(request: Request, key: ApiKey, raw: bytes, media: str, if_match: str) -> Idempotency | None:
    value = header(request, "idempotency-key")
    if value is None:
        return None
    if not IDEMPOTENCY_KEY_RE.fullmatch(value):
        raise InvalidRequest.for_fields({"Idempotency-Key": "must be 1-255 printable ASCII characters"})
    key_digest = hashlib.sha256(value.encode()).hexdigest()  # bounded length, whatever the client sent
    fingerprint = hashlib.sha256(
        b"\0".join([request.method.encode(), request.url.path.encode(), media.encode(), if_match.encode(), raw])
    ).hexdigest()
    settings = request.app.state.settings
    return Idempotency(key.id, key_digest, fingerprint, settings.idempotency_ttl, settings.idempotency_max_per_key)


async def run(endpoint: Endpoint, call: Call) -> tuple[int, Any]:
    """The request's pipeline: ``prepare``, then the endpoint's handler (one service call)."""
    await prepare(endpoint, call)
    return await endpoint.handler(call)


async def prepare(endpoint: Endpoint, call: Call) -> None:
    """Everything before the service call, in the contract's order: authenticate and rate limit (401,
    429), authorize (403), then path keys and the body (400, 413, 415). A PATCH by a key this process
    knows leaves the first two to the update script (one round trip in all)."""
    if endpoint.role is None:
        await read(endpoint, call)
        return
    request = call.request
    layout = request.app.state.layout
    if not layout.checked:  # Redis was unreachable when this process started: check before any key is used
        await layout.ensure()
    call.credential = credential(request, endpoint)
    known = request.app.state.gate.known(call.credential.digest) if endpoint.admits_in_write else None
    if known is not None and allowed(call.credential.limit(known), endpoint, request):
        await read_then_admit_in_the_write(endpoint, call, call.credential.limit(known))
    else:
        await admit(endpoint, call)
        await read(endpoint, call)


def credential(request: Request, endpoint: Endpoint) -> Credential:
    """What the request authenticates with (401 for a malformed key or token, an expired token, a key
    in a URL): an API key, or a client token (``tokens``), sent in a header; on the event log's
    endpoints a client token may come as ``?access_token=`` instead (EventSource sends no headers)."""
    in_url = request.query_params.get("access_token") if b"access_token" in request.scope["query_string"] else None
    if in_url is not None and (header(request, "x-api-key") or header(request, "authorization")):
        in_url = None  # a credential in a header is the one
    if in_url is not None:
        if in_url.startswith("ask_"):
            raise Unauthorized("API keys are never accepted in a URL: send the key in the x-api-key header")
        if not endpoint.url_tokens:
            raise Unauthorized("access_token is taken only by GET /v2/events and /v2/events/stream")
        value = in_url
    else:
        value = presented(header(request, "x-api-key"), header(request, "authorization"))
    if value.startswith(tokens.PREFIX):
        signer: tokens.Signer | None = request.app.state.tokens
        if signer is None:
            raise Unauthorized("client tokens are not enabled on this server (CLIENT_TOKENS)")
        token = signer.verify(value)
        return Credential(token.key_digest, token)
    if not SECRET_RE.fullmatch(value):
        raise Unauthorized("malformed API key")
    return Credential(digest(value))


async def admit(endpoint: Endpoint, call: Call) -> None:
    """Authenticate and rate limit (one round trip; 401, 429), then authorize (403)."""
    request = call.request
    assert call.credential is not None
    found, quota, allowed_now = await request.app.state.gate.admit(call.credential.digest, client_address(request))
    call.key = call.credential.limit(found)
    call.response_headers = quota.headers()
    call.key_id = call.key.id
    if not allowed_now:
        raise RateLimited(retry_after(quota.next_token_ms))
    check(call.key, endpoint, request)


async def read(endpoint: Endpoint, call: Call) -> None:
    """Path keys, then the body and its headers (400, 413, 415): no Redis."""
    request = call.request
    if endpoint.path_keys:
        check_path_keys(request.path_params["agent_key"], request.path_params.get("session_key"))
    if endpoint.body is None:
        return
    if not header(request, "content-type") and bodiless(request):
        raw, media = b"", ""
        call.body = models.empty_body(endpoint.body)  # an optional body left out: its defaults (else 400)
    else:
        raw, media = await read_body(request, request.app.state.settings.max_body_bytes, endpoint.accepted)
        call.body = models.parse_body(endpoint.body, raw)
    call.merge = media == MERGE_PATCH_TYPE
    if endpoint.conditional:
        call.if_match = parse_if_match(header(request, "if-match"))
    if endpoint.idempotent and call.key is not None:
        call.idem = idempotency(request, call.key, raw, media, call.if_match)


async def read_then_admit_in_the_write(endpoint: Endpoint, call: Call, known: ApiKey) -> None:
    """A key this process admitted before: the write script runs the gate (one round trip). The
    request is read first, which needs no Redis; if it is bad, the gate still runs first so that its
    401 / 429 / 403 win over the 400, as in the usual order. Role and scope are checked from the key's
    record, which never changes (revocation is the gate's to check)."""
    request = call.request
    call.key = known
    try:
        await read(endpoint, call)
    except ServiceError:
        await admit(endpoint, call)
        raise
    if call.merge:  # a merge patch reads the session before it writes: admit it first
        await admit(endpoint, call)
        return
    call.key_id = known.id

    def on_quota(quota: Quota) -> None:
        call.response_headers = quota.headers()

    assert call.credential is not None
    call.admission = request.app.state.gate.admission(call.credential.digest, client_address(request), on_quota)


def answer(endpoint: Endpoint, call: Call, status: int, payload: Any) -> tuple[int, list[tuple[bytes, bytes]], bytes]:
    """A handler's outcome as an answer: status, headers, body (JSON; none for a 204)."""
    if payload is None:
        return status, [], b""
    body = orjson.dumps(payload)
    headers = [(b"content-type", JSON_BYTES), (b"content-length", str(len(body)).encode())]
    if endpoint.etag:
        headers.append((b"etag", f'"{payload["version"]}"'.encode()))
    if call.replayed:
        headers.append((b"idempotent-replayed", b"true"))
    return status, headers, body


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check(key: ApiKey, endpoint: Endpoint, request: Request) -> None:
    """Authorize (403): the key's role and scope (and a client token's) for this endpoint and path."""
    assert endpoint.role is not None
    params = request.path_params
    authorize(
        key, endpoint.role, params.get("agent_key"), endpoint.any_agent, params.get("session_key"), endpoint.tokens
    )


def allowed(key: ApiKey, endpoint: Endpoint, request: Request) -> bool:
    try:
        check(key, endpoint, request)
    except Forbidden:
        return False
    return True
