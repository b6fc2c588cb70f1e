"""The endpoint table's vocabulary and what every handler uses: ``Endpoint`` (one row: method, path,
handler, role, body and response shapes, and what the request pipeline checks for it), ``Call`` (one
request as handlers see it), query parameters, and cached header access.

A feature declares its endpoints as a tuple of ``Endpoint`` in its ``routes`` module (e.g.
``sessions/routes.py``); ``web/routes.py`` joins them, and both ``/openapi.json`` and the edge's
dispatch are built from that one table, so the documented contract is the enforced one. The checks a
request meets before its handler are in ``web/pipeline.py``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from starlette.requests import Request
from starlette.types import Message, Send

from agent_sessions.access.auth import (
    TOKENS_NONE,
    ApiKey,
    Role,
)
from agent_sessions.access.ratelimit import Admission
from agent_sessions.access.tokens import Credential
from agent_sessions.errors import (
    InvalidRequest,
    ServiceError,
)
from agent_sessions.events.model import Origin
from agent_sessions.sessions.services import (
    Services,
)
from agent_sessions.sessions.store import Idempotency
from agent_sessions.web.errors import JSON, request_id

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


LIMIT = QueryParam("limit", {"type": "integer", "minimum": 1, "maximum": 100, "default": 20}, "page size")


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name, str(default))
    if not DIGITS_RE.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest.for_fields({name: f"must be an integer from {low} to {high}"})
    return int(raw)


def query_limit(request: Request) -> int:
    return query_int(request, "limit", 20, 1, 100)


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


def appending(send: Send, added: Sequence[tuple[bytes, bytes]]) -> Send:
    """``send``, with ``added`` headers after the ones the answer has (a page's security headers, CORS)."""

    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            message["headers"] = [*message.get("headers", ()), *added]
        await send(message)

    return sending
