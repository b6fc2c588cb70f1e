"""``create_app()``: the one place the HTTP service is wired together.

The object graph (``bootstrap.api``) is owned by the lifespan: built at start-up, its Redis client closed
at shutdown, nothing connected at import. Nothing here connects eagerly, so the API starts while Redis
is down and answers 503 until it returns.

The application is the edge (``web/edge.py``) in front of a Starlette application: the edge dispatches
the API's endpoints itself and hands everything else (the lifespan, ``/openapi.json``, unknown paths) to
Starlette.
"""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.redis import topology
from agent_sessions.sessions.routes import SESSION, SESSION_COUNT
from agent_sessions.web import openapi
from agent_sessions.web.access import AccessLog
from agent_sessions.web.cors import Cors
from agent_sessions.web.edge import Edge
from agent_sessions.web.errors import HANDLERS, JSON
from agent_sessions.web.pages import console_routes, docs_routes
from agent_sessions.web.routes import ENDPOINTS

# The cyclic garbage collector's first threshold: allocations (less deallocations) between collections
# of the youngest generation. A request allocates a few hundred containers, nearly all freed by reference
# counting when it ends; at Python's default (700) young collections ran every few requests. Measured
# under load (32 connections): 2,000 cost less CPU per PATCH than 700, and kept p99 as low; 50,000 cost
# less still but each collection then paused the process long enough to double p99.
GC_THRESHOLD = 2_000


def collect_less() -> None:
    """Once started: what start-up made is moved out of the collector's sight (``gc.freeze``: full
    collections walked every module and object of the app, and their pauses doubled the PATCH's p99
    under load), and young collections run a little less often."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, *gc.get_threshold()[1:])


def create_app(settings: Settings | None = None, access: AccessLog | None = None) -> Edge:
    """``access``: where the access log goes (default: stderr, in LOG_FORMAT, when LOG_LEVEL is INFO or
    lower)."""
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
        app.state.tokens = graph.tokens
        collect_less()
        try:
            yield
        finally:
            await graph.aclose()

    async def openapi_json(request: Request) -> Response:
        return Response(spec, media_type=JSON)

    inner = Starlette(
        routes=[
            Route("/openapi.json", openapi_json, methods=["GET"], include_in_schema=False),
            *console_routes(),
            *docs_routes(),
        ],
        exception_handlers=HANDLERS,
        lifespan=lifespan,
    )
    inner.router.redirect_slashes = False  # a trailing slash is a 404, never a redirect built from Host
    # The PATCH's path first, behind the one other path that matches some of its URLs (…/sessions/count).
    origins = settings.cors_allow_origins
    cors = (lambda app: Cors(app, origins)) if origins else None  # no origin: no CORS layer at all
    return Edge(inner, ENDPOINTS, (SESSION_COUNT, SESSION), access or AccessLog.of(settings), cors)
