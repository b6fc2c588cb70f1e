"""The HTTP edge: the first and the last thing every request meets.

- Every answer, errors included, carries ``X-Request-ID``: the client's when it is plain (no spaces,
  quotes or control characters to break a log line) and not in the server's own namespace (``req_…``),
  else a new one, so that an id always names one request.
- The API's endpoints (``web/routes.ENDPOINTS``) are dispatched here, from the ASGI scope straight to their
  pipeline (``pipeline.run``), and answered with raw ASGI messages. Starlette's middleware stack, router
  and Response objects cost about a tenth of a PATCH's CPU (measured with ``make bench``), and the
  endpoints use none of what they add. Everything else (``/openapi.json``, the console, the docs,
  unknown paths) is the Starlette application's, which the lifespan and the state belong to.
- One line in the access log (``AccessLog``) and the request metrics, for every request.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_sessions import errors
from agent_sessions.ids import new_id
from agent_sessions.metrics import LATENCY, REQUESTS
from agent_sessions.web.access import AccessLog
from agent_sessions.web.errors import error_parts, log_internal_error
from agent_sessions.web.framework import Call, Endpoint
from agent_sessions.web.pipeline import answer, run

CLIENT_REQUEST_ID = re.compile(r"(?!req_)[A-Za-z0-9._:-]{1,128}")
UNMATCHED = "unmatched"  # the route label of a request no endpoint took


@dataclass(frozen=True)
class Path:
    """One path of the API: its pattern, its template (the metrics' and the log's route label) and the
    endpoint of each method it takes."""

    template: str
    pattern: re.Pattern[str]
    methods: dict[str, Endpoint]

    @property
    def allow(self) -> str:
        return ", ".join(sorted({*self.methods, *(("HEAD",) if "GET" in self.methods else ())}))


def paths(endpoints: Iterable[Endpoint], first: tuple[str, ...]) -> list[Path]:
    """The paths in the order they are tried: ``first`` (the PATCH's, and the one path that matches
    some of its URLs, ``…/sessions/count``, before it), then the others as declared."""
    by_template: dict[str, dict[str, Endpoint]] = {template: {} for template in first}
    for endpoint in endpoints:
        by_template.setdefault(endpoint.path, {})[endpoint.method] = endpoint
    return [Path(t, re.compile(_regex(t)), methods) for t, methods in by_template.items()]


def _regex(template: str) -> str:
    parts = re.split(r"{(\w+)}", template)
    return "".join(re.escape(p) if i % 2 == 0 else f"(?P<{p}>[^/]+)" for i, p in enumerate(parts)) + r"\Z"


class Edge:
    """The ASGI application ``create_app`` returns. ``inner``: the Starlette application (lifespan,
    state, what is not an endpoint). ``cors``: a layer between the request id, the log and the metrics
    and the dispatch (``web/cors.py``), when origins are allowed; the dispatch itself otherwise."""

    def __init__(
        self,
        inner: Any,
        endpoints: Iterable[Endpoint],
        first: tuple[str, ...],
        access: AccessLog,
        cors: Callable[[ASGIApp], ASGIApp] | None = None,
    ) -> None:
        self.inner = inner
        self.paths = paths(endpoints, first)
        self.access = access
        self.handle: ASGIApp = self.dispatch if cors is None else cors(self.dispatch)

    @property
    def state(self) -> Any:
        return self.inner.state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.inner(scope, receive, send)
            return
        started = time.perf_counter()
        rid = _request_id(scope["headers"])
        # What the dispatch leaves for the log and the metrics: the status, the route, the key's id.
        state = scope["state"] = {"request_id": rid, "status": 500, "route": UNMATCHED, "key_id": None}
        scope["app"] = self.inner  # what Starlette's Request reads its app (and the state) from
        await self.handle(scope, receive, send)
        elapsed = time.perf_counter() - started
        method, route, status = scope["method"], state["route"], state["status"]
        requests, latency = _children(method, route, status)
        requests.inc()
        latency.observe(elapsed)
        self.access.line(rid, state["key_id"], method, route, scope["path"], status, elapsed)

    async def dispatch(self, scope: Scope, receive: Receive, send: Send) -> None:
        state, method, found = scope["state"], scope["method"], self.find(scope["path"])
        rid = state["request_id"]
        if found is None:
            state["status"] = await self.pass_on(scope, receive, send, rid)
            state["route"] = getattr(scope.get("route"), "path", UNMATCHED)  # set by Starlette's router
            return
        path, params = found
        endpoint = path.methods.get("GET" if method == "HEAD" else method)
        scope["path_params"] = params
        call = Call(Request(scope, receive), self.inner.state.services, None, {})
        if endpoint is None:
            status = await self.refuse(send, call, rid, errors.MethodNotAllowed(), {"Allow": path.allow})
        else:
            status = await self.serve(endpoint, call, scope, receive, send, rid)
        state["status"], state["route"], state["key_id"] = status, path.template, call.key_id

    def find(self, path: str) -> tuple[Path, dict[str, str]] | None:
        for candidate in self.paths:
            match = candidate.pattern.match(path)
            if match is not None:
                return candidate, match.groupdict()
        return None

    async def serve(self, endpoint: Endpoint, call: Call, scope: Scope, receive: Receive, send: Send, rid: str) -> int:
        try:
            status, payload = await run(endpoint, call)
            if isinstance(payload, Response):  # a stream: it sends itself
                await payload(scope, receive, _with_request_id(send, rid))
                return payload.status_code
            status, headers, body = answer(endpoint, call, status, payload)
        except errors.ServiceError as exc:
            return await self.refuse(send, call, rid, exc)
        except ClientDisconnect:
            logging.getLogger("agent_sessions.web").info("client disconnected before the request was read (%s)", rid)
            return 499  # nginx's "client closed request": nobody is left to answer
        except Exception as exc:
            log_internal_error(rid, exc)
            await self.refuse(send, call, rid, errors.InternalError(), {"Connection": "close"})
            raise  # uvicorn closes the connection (the answer said so), as after any 500
        headers.append((b"x-request-id", rid.encode()))
        headers += [(n.encode("latin-1"), v.encode("latin-1")) for n, v in call.response_headers]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})
        return status

    async def refuse(
        self, send: Send, call: Call, rid: str, exc: errors.ServiceError, extra: dict[str, str] | None = None
    ) -> int:
        status, headers, body = error_parts(exc, rid, extra)
        raw = [(n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in headers.items()]
        raw += [(n.encode("latin-1"), v.encode("latin-1")) for n, v in call.response_headers]
        raw.append((b"content-length", str(len(body)).encode()))
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": body})
        return status

    async def pass_on(self, scope: Scope, receive: Receive, send: Send, rid: str) -> int:
        """A request for the Starlette application: its answer gets the request id too."""
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        await self.inner(scope, receive, _with_request_id(sending, rid))
        return status


def _request_id(headers: list[tuple[bytes, bytes]]) -> str:
    for name, value in headers:
        if name == b"x-request-id":
            incoming = value.decode("latin-1")
            return incoming if CLIENT_REQUEST_ID.fullmatch(incoming) else new_id("req")
    return new_id("req")


def _with_request_id(send: Send, rid: str) -> Callable[[Message], Any]:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = message.setdefault("headers", [])
            if not any(name == b"x-request-id" for name, _ in headers):
                headers.append((b"x-request-id", rid.encode("latin-1")))
        await send(message)

    return sending


@lru_cache(maxsize=1024)
def _children(method: str, route: str, status: int) -> tuple[Any, Any]:
    # Resolving labels takes a lock and a lookup on every call; the label sets here are few and fixed.
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)
