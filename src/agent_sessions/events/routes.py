"""The HTTP endpoints of the event log: pages and long polls (``GET /v2/events``), one event, and the
live feed as Server-Sent Events (``GET /v2/events/stream``). A key sees the agents it may see; a client
token of one session, that session's events.
"""

from __future__ import annotations

import re
from typing import Any

from agent_sessions.access.auth import (
    TOKENS_SESSION,
    Role,
    authorize,
)
from agent_sessions.errors import (
    AgentNotFound,
    CursorExpired,
    EventNotFound,
    Forbidden,
    InvalidRequest,
)
from agent_sessions.events import feed
from agent_sessions.events.model import TYPES as EVENT_TYPES
from agent_sessions.events.model import Event, EventList
from agent_sessions.events.stream import EventStream
from agent_sessions.sessions import models
from agent_sessions.web.framework import (
    Call,
    Endpoint,
    QueryParam,
    header,
    query_int,
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
TYPE_RE = "(" + "|".join(re.escape(t) for t in EVENT_TYPES) + ")"
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


EVENT_ID_RE = re.compile(r"(evt|esc)_[A-Za-z0-9_-]{1,80}")  # an event, or an escalation

ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "GET",
        "/v2/events",
        list_events,
        "The event log, in commit order, from a cursor (a key limited to some agents sees theirs)",
        Role.VIEWER,
        response=EventList,
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
        response=Event,
        raises=(EventNotFound,),
        tokens=TOKENS_SESSION,
    ),
)
