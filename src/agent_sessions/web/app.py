"""``create_app()``: the one place the HTTP service is wired together.

The object graph (``bootstrap.api``) is owned by the lifespan: built at start-up, its Redis client closed
at shutdown, nothing connected at import.
Nothing here connects eagerly, so the API starts while Redis is down and answers 503 until it returns.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import lru_cache
from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.ids import new_id
from agent_sessions.metrics import LATENCY, REQUESTS
from agent_sessions.redis import topology
from agent_sessions.web import openapi
from agent_sessions.web.errors import HANDLERS, JSON
from agent_sessions.web.routes import ENDPOINTS as SESSION_ENDPOINTS
from agent_sessions.web.routes import routes as build_routes
from agent_sessions.web.webhook_routes import WEBHOOK_ENDPOINTS

ENDPOINTS = SESSION_ENDPOINTS + WEBHOOK_ENDPOINTS  # what /openapi.json documents and the routes serve

# A client's id is echoed when it is plain (no spaces, quotes or control characters to break a log
# line) and is not in the server's own namespace (req_…), so that an id always names one request.
CLIENT_REQUEST_ID = re.compile(r"(?!req_)[A-Za-z0-9._:-]{1,128}")
access_log = logging.getLogger("agent_sessions.access")


class EdgeMiddleware:
    """What every HTTP response gets, errors included: ``X-Request-ID`` (the client's, if sane, else a
    new one), the headers the pipeline left in ``state["response_headers"]`` (rate limits), a line in
    the access log (request id, key id, route, status, duration) and the request metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        incoming = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-request-id"), "")
        rid = incoming if CLIENT_REQUEST_ID.fullmatch(incoming) else new_id("req")
        state = scope.setdefault("state", {})
        state["request_id"] = rid
        status = 500

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                # Raw header tuples: this runs on every response, and MutableHeaders costs more.
                headers = message.setdefault("headers", [])
                if not any(name == b"x-request-id" for name, _ in headers):
                    headers.append((b"x-request-id", rid.encode("latin-1")))
                for name, value in state.get("response_headers", ()):
                    headers.append((name.encode("latin-1"), value.encode("latin-1")))
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = getattr(scope.get("route"), "path", "unmatched")
            method = scope["method"]
            requests, latency = _children(method, route, status)
            requests.inc()
            latency.observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info(
                    "%s %s %s",
                    method,
                    route,
                    status,
                    extra={
                        "request_id": rid,
                        "key_id": state.get("key_id"),
                        "method": method,
                        "route": route,
                        "path": scope["path"],
                        "status": status,
                        "duration_ms": round(elapsed * 1000, 2),
                    },
                )


@lru_cache(maxsize=1024)
def _children(method: str, route: str, status: int) -> tuple[Any, Any]:
    # Resolving labels takes a lock and a lookup on every call; the label sets here are few and fixed.
    return REQUESTS.labels(method, route, str(status)), LATENCY.labels(method, route)


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    settings.required_redis_url("the API")  # fail now, not at the first request
    spec = openapi.document(ENDPOINTS, bootstrap.metadata_limits(settings))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        graph = bootstrap.api(settings)
        try:
            await topology.check_async(graph.client, settings.redis_min_replica_acks)
            await graph.layout.start()
        except BaseException:
            await graph.aclose()
            raise
        app.state.settings = settings
        app.state.layout = graph.layout
        app.state.services = graph.services
        app.state.gate = graph.gate
        app.state.feed = graph.feed
        app.state.webhooks = graph.webhooks
        try:
            yield
        finally:
            await graph.aclose()

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type=JSON)

    routes = build_routes(ENDPOINTS)
    routes.append(Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False))
    app = Starlette(
        routes=routes,
        middleware=[Middleware(EdgeMiddleware)],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    app.router.redirect_slashes = False  # a trailing slash is a 404, never a redirect built from Host
    return app
