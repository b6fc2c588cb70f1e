"""The HTTP endpoints of agents and their sessions: one service call each (``sessions.services``).

``PATCH /v2/agents/{agent_key}/sessions/{session_key}`` is ``update_session``: the pipeline
(``web/pipeline.py``) has authenticated, limited and read the request by then, or left the gate to the
update script itself (``admits_in_write``); ``Services.update_session`` writes it in one script.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from agent_sessions.access.auth import (
    TOKENS_AGENT,
    TOKENS_SESSION,
    Role,
)
from agent_sessions.errors import (
    IndexNotReady,
    InvalidRequest,
    PreconditionFailed,
)
from agent_sessions.reports.model import Report
from agent_sessions.sessions import filters, models
from agent_sessions.sessions.services import (
    PAGE_KEY_MAX_LENGTH,
    SESSION_PAGE_KEY_PATTERN,
    SORTS,
    Search,
)
from agent_sessions.web.framework import (
    DIGITS_RE,
    ETAG_RE,
    LIMIT,
    Call,
    Endpoint,
    QueryParam,
    header,
    query_limit,
)


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
    "(the grammar: the docs' guide Finding sessions)",
)
SORT = QueryParam(
    "sort",
    {"type": "string", "enum": list(SORTS), "default": "key"},
    "the order: by session key (default), created_at or updated_at; '-' for newest first",
)


def query_enabled(request: Request) -> bool | None:
    raw = request.query_params.get("enabled")
    if raw is None:
        return None
    if raw not in ("true", "false"):
        raise InvalidRequest.for_fields({"enabled": "must be true or false"})
    return raw == "true"


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
)
