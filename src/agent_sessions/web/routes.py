"""Every endpoint of the API, in one table: each feature's own (``sessions``, ``events``, ``access``,
``webhooks``), and the health checks. ``/openapi.json`` and the edge's dispatch are both built from
``ENDPOINTS`` (see ``web/framework.py``).
"""

from __future__ import annotations

from typing import Any

from agent_sessions.access.routes import ENDPOINTS as ACCESS
from agent_sessions.events.routes import ENDPOINTS as EVENTS
from agent_sessions.sessions import models
from agent_sessions.sessions.routes import ENDPOINTS as SESSIONS
from agent_sessions.web.framework import Call, Endpoint
from agent_sessions.webhooks.routes import ENDPOINTS as WEBHOOKS


async def healthz(c: Call) -> tuple[int, Any]:
    return 200, {"status": "ok"}


async def readyz(c: Call) -> tuple[int, Any]:
    await c.services.store.ping()
    return 200, {"status": "ok"}


HEALTH: tuple[Endpoint, ...] = (
    Endpoint("GET", "/healthz", healthz, "Liveness: the process answers", response=models.Health),
    Endpoint("GET", "/readyz", readyz, "Readiness: Redis answers a PING", response=models.Health),
)

ENDPOINTS = SESSIONS + EVENTS + ACCESS + HEALTH + WEBHOOKS  # what /openapi.json documents and the edge serves
