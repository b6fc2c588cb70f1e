"""The API's own web pages, static files served by the API process from the wheel (no CDN, nothing
fetched from anywhere else, so they work offline), each with a Content-Security-Policy that allows
only its own files and no framing:

- ``/console`` (``web/console/``): the operator's console. It is a client of the public API like any
  other: it signs in with an API key kept in the tab's ``sessionStorage`` (never a cookie, never in a
  URL), calls the same endpoints with it, and follows live events with a client token
  (``POST /v2/client_tokens``: EventSource sends no headers). Everything the API returns is rendered
  as text.
- ``/docs`` (``web/docs/``): the interactive API reference, Swagger UI on ``/openapi.json``. Its
  policy also allows inline styles, which Swagger UI sets on its elements (its scripts stay files).
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_sessions.web.framework import appending

CONSOLE_DIR = Path(str(files("agent_sessions.web") / "console"))
DOCS_DIR = Path(str(files("agent_sessions.web") / "docs"))
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
DOCS_POLICY = POLICY.replace("style-src 'self'", "style-src 'self' 'unsafe-inline'")


def headers(policy: str) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-security-policy", policy.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"referrer-policy", b"no-referrer"),
        (b"x-frame-options", b"DENY"),
        (b"cache-control", b"no-cache"),
    ]


class Guarded:
    """A page's files, with its security headers on every answer."""

    def __init__(self, app: ASGIApp, policy: str = POLICY) -> None:
        self.app = app
        self.headers = headers(policy)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, appending(send, self.headers))


def page_routes(path: str, directory: Path, policy: str) -> list[BaseRoute]:
    """``path`` (its ``index.html``: nothing redirects, so a page names its files by absolute paths)
    and ``path/<file>``."""

    async def index(scope: Scope, receive: Receive, send: Send) -> None:
        await FileResponse(directory / "index.html")(scope, receive, send)

    return [
        Route(path, Guarded(index, policy), methods=["GET"], include_in_schema=False),
        Mount(path, app=Guarded(StaticFiles(directory=directory, html=True), policy)),
    ]


def console_routes() -> list[BaseRoute]:
    return page_routes("/console", CONSOLE_DIR, POLICY)


def docs_routes() -> list[BaseRoute]:
    return page_routes("/docs", DOCS_DIR, DOCS_POLICY)
