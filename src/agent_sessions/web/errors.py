"""The handlers that render errors as HTTP answers (each domain error class carries its status).

Body shape everywhere: ``{"code", "messages", "request_id", "field_errors"?}``. A 500 says nothing
about internals; the traceback goes to the log under the request id.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import Response

from agent_sessions import errors
from agent_sessions.ids import new_id
from agent_sessions.metrics import RATE_LIMITED, REPLICA_ACKS_MISSED

log = logging.getLogger("agent_sessions.web")

HTTP_CODES = {404: errors.RouteNotFound.code, 405: errors.MethodNotAllowed.code}
JSON = "application/json"


def request_id(request: Request) -> str:
    state = request.scope.setdefault("state", {})
    rid: str | None = state.get("request_id")
    if rid is None:
        rid = state["request_id"] = new_id("req")
    return rid


def error_response(
    request: Request,
    status: int,
    code: str,
    messages: list[str],
    field_errors: Mapping[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    rid = request_id(request)
    body: dict[str, object] = {"code": code, "messages": messages, "request_id": rid}
    if field_errors:
        body["field_errors"] = dict(field_errors)
    return Response(orjson.dumps(body), status, headers={**(headers or {}), "x-request-id": rid}, media_type=JSON)


async def service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ServiceError)
    headers: dict[str, str] = {}
    if isinstance(exc, errors.Unauthorized):
        headers["WWW-Authenticate"] = 'Bearer realm="agent-sessions"'
    elif isinstance(exc, errors.RateLimited):
        headers["Retry-After"] = str(exc.retry_after)
        RATE_LIMITED.labels(exc.reason).inc()
    elif isinstance(exc, errors.StoreUnavailable):
        headers["Retry-After"] = "1"
        if isinstance(exc, errors.ReplicasBehind):
            REPLICA_ACKS_MISSED.inc()
        log.warning("redis unavailable: %r", exc.__cause__ or exc)
    elif isinstance(exc, errors.PreconditionFailed) and exc.current_version is not None:
        headers["ETag"] = f'"{exc.current_version}"'
    if exc.replayed:
        headers["Idempotent-Replayed"] = "true"
    return error_response(request, exc.status, exc.code, exc.messages, exc.field_errors, headers)


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, "invalid_request")
    return error_response(request, exc.status_code, code, [str(exc.detail)], headers=dict(exc.headers or {}))


async def client_disconnected(request: Request, exc: Exception) -> Response:
    """The client went away before its request was read: nobody is left to answer. Logged as such, and
    counted under 499 (nginx's "client closed request"), not as a server error."""
    log.info("client disconnected before the request was read (request %s)", request_id(request))
    return Response(status_code=499)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Starlette raises the exception again once this answer is sent, and uvicorn then closes the
    connection: ``Connection: close`` says so, so a client's next request is not sent into it."""
    log.exception("unhandled error in request %s", request_id(request), exc_info=exc)
    failed = errors.InternalError()
    return error_response(request, 500, failed.code, failed.messages, headers={"Connection": "close"})


HANDLERS = {
    errors.ServiceError: service_error,
    ClientDisconnect: client_disconnected,
    HTTPException: http_error,
    Exception: internal_error,
}
