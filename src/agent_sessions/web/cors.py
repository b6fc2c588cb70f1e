"""CORS for browser frontends (``CORS_ALLOW_ORIGINS``): Starlette's ``CORSMiddleware``, answering only
the origins it allows.

- A request from an allowed origin gets ``Access-Control-Allow-Origin`` (the origin, with ``Vary:
  Origin``) and ``Access-Control-Expose-Headers`` on every answer, errors included; a preflight
  (``OPTIONS`` with ``Access-Control-Request-Method``) is answered 204 with the methods and headers the
  API takes and ``Access-Control-Max-Age``.
- Any other origin, and a request with no ``Origin``, gets no CORS header at all (Starlette's adds some
  to every answer): its request goes on as if there were no CORS, and a browser refuses the answer.
- An answer to an allowed origin gets its headers appended to the ones the endpoint sent, by a plain
  ``send`` wrapper (``framework.appending``), not by Starlette's ``simple_response`` (which parses and
  rewrites every answer's headers and checks the origin a second time: about a tenth of a PATCH's CPU,
  measured with ``make bench --cors``). The API sends no ``Vary`` of its own, so ``Vary: Origin`` is
  added as is.
- No credentials mode: the API takes no cookies. ``X-API-Key`` is not among the headers a page may send:
  a browser uses a client token (``Authorization: Bearer act_…``), never an API key.

An origin is ``scheme://host[:port]``; ``*`` alone allows every origin, and a ``*`` inside one stands for
any host or port characters (``http://localhost:*``, ``https://*.example.com``).
"""

from __future__ import annotations

import re

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from agent_sessions.web.framework import appending

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
HEADERS = ("Authorization", "Content-Type", "If-Match", "Idempotency-Key", "X-Request-ID", "Last-Event-ID")
EXPOSED = ("ETag", "RateLimit", "RateLimit-Policy", "Retry-After", "X-Request-ID", "Idempotent-Replayed", "Location")
EXPOSE = ", ".join(EXPOSED).encode()  # the header's value
MAX_AGE_S = 600


def origin_pattern(origins: tuple[str, ...]) -> str:
    """One regular expression for the allowed origins (``*`` inside one: host or port characters)."""
    if "*" in origins:
        return ".*"
    return "|".join(re.escape(origin).replace(r"\*", "[A-Za-z0-9.-]+") for origin in origins)


class Cors(CORSMiddleware):
    def __init__(self, app: ASGIApp, origins: tuple[str, ...]) -> None:
        super().__init__(
            app,
            allow_origin_regex=origin_pattern(origins),
            allow_methods=METHODS,
            allow_headers=HEADERS,
            expose_headers=EXPOSED,
            max_age=MAX_AGE_S,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        raw = None
        for name, value in scope["headers"]:
            if name == b"origin":
                raw = value
                break
        if raw is None or not self.is_allowed_origin(raw.decode("latin-1")):
            await self.app(scope, receive, send)  # no CORS: nothing added (and no cost for a server-side client)
            return
        if scope["method"] == "OPTIONS":
            headers = Headers(scope=scope)
            if "access-control-request-method" in headers:
                scope["state"]["status"] = 204
                await self.preflight_response(request_headers=headers)(scope, receive, send)
                return
        added = (
            (b"access-control-allow-origin", raw),
            (b"vary", b"Origin"),
            (b"access-control-expose-headers", EXPOSE),
        )
        await self.app(scope, receive, appending(send, added))

    def preflight_response(self, request_headers: Headers) -> Response:
        """The origin is allowed (``__call__`` checked): 204 with what the API takes; a method or header
        it does not take is for the browser to refuse."""
        headers = {**self.preflight_headers, "Access-Control-Allow-Origin": request_headers["origin"]}
        return Response(status_code=204, headers=headers)
