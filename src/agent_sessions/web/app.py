"""``create_app()``: the one place the HTTP service is wired together.

The Redis client is owned by the lifespan: created at start-up, closed at shutdown, never at import.
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

from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.ids import new_id
from agent_sessions.metrics import LATENCY, REQUESTS
from agent_sessions.models import MetadataLimits
from agent_sessions.ratelimit import Gate, Limits
from agent_sessions.redis_client import Batches, async_client
from agent_sessions.services import Services
from agent_sessions.store import Store
from agent_sessions.web import openapi
from agent_sessions.web.errors import HANDLERS, JSON
from agent_sessions.web.routes import ENDPOINTS
from agent_sessions.web.routes import routes as build_routes

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


def metadata_limits(settings: Settings) -> MetadataLimits:
    return MetadataLimits(
        max_keys=settings.metadata_max_keys,
        max_key_length=settings.metadata_max_key_length,
        max_depth=settings.metadata_max_depth,
        max_bytes=settings.metadata_max_bytes,
    )


def rate_limits(settings: Settings) -> Limits:
    return Limits(
        rate=settings.rate_limit_rate,
        burst=settings.rate_limit_burst,
        failure_rate=settings.auth_failure_rate,
        failure_burst=settings.auth_failure_burst,
    )


def create_app(settings: Settings | None = None) -> Starlette:
    settings = settings or Settings.from_env()
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set: the API needs a Redis server (or run `agent-sessions dev`)")
    redis_url = settings.redis_url
    spec = openapi.document(ENDPOINTS, metadata_limits(settings))

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        client = async_client(redis_url, settings.redis_timeout, settings.redis_pool_size)
        app.state.settings = settings
        batches = Batches(client)  # the scripts of concurrent requests share pipelines
        store = Store(
            client, history_max=settings.history_max, batches=batches, history_max_bytes=settings.history_max_bytes
        )
        app.state.services = Services(store, metadata_limits(settings), settings.report_dimensions)
        app.state.gate = Gate(client, rate_limits(settings), batches)
        try:
            yield
        finally:
            await client.aclose()

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
