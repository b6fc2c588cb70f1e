"""``/console``: the operator's console, static files served by the API process (shipped in the wheel:
``web/console/``; no CDN, nothing fetched from anywhere else, so it works offline).

It is a client of the public API like any other: it signs in with an API key kept in the tab's
``sessionStorage`` (never a cookie, never in a URL), calls the same endpoints with it, and follows live
events with a client token (``POST /v2/client_tokens``: EventSource sends no headers). Its pages are
served with a Content-Security-Policy that allows only its own scripts and styles (no inline script, no
``eval``) and no framing, and everything the API returns is rendered as text.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from starlette.responses import FileResponse
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

CONSOLE_DIR = Path(str(files("agent_sessions.web") / "console"))
POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'none'; object-src 'none'"
)
HEADERS = [
    (b"content-security-policy", POLICY.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cache-control", b"no-cache"),
]


class Guarded:
    """The console's files with its security headers on every answer."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *HEADERS]
            await send(message)

        await self.app(scope, receive, sending)


async def _index(scope: Scope, receive: Receive, send: Send) -> None:
    await FileResponse(CONSOLE_DIR / "index.html")(scope, receive, send)


def console_routes() -> list[BaseRoute]:
    """``/console`` (its page: nothing redirects, so the page names its files by absolute paths) and
    ``/console/<file>``."""
    return [
        Route("/console", Guarded(_index), methods=["GET"], include_in_schema=False),
        Mount("/console", app=Guarded(StaticFiles(directory=CONSOLE_DIR, html=True)), name="console"),
    ]
