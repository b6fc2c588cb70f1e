"""How errors are answered: one body everywhere, ``{"code", "messages", "request_id", "field_errors"?}``,
with the status and headers each domain error class implies (``error_parts``). The edge answers the
API's endpoints with it directly; the handlers here answer for the Starlette application (the paths
that are not endpoints). A 500 says nothing about internals; the traceback goes to the log under the
request id.
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


def error_body(rid: str, code: str, messages: list[str], field_errors: Mapping[str, str] | None = None) -> bytes:
    body: dict[str, object] = {"code": code, "messages": messages, "request_id": rid}
    if field_errors:
        body["field_errors"] = dict(field_errors)
    return orjson.dumps(body)


def error_parts(
    exc: errors.ServiceError, rid: str, extra: Mapping[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    """The answer to a domain error: status, headers (the request id and what the error implies:
    WWW-Authenticate, Retry-After, the current ETag of a 412...), body. Counts the metrics it implies."""
    headers = {"content-type": JSON, "x-request-id": rid, **(extra or {})}
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
    return exc.status, headers, error_body(rid, exc.code, exc.messages, exc.field_errors)


def log_internal_error(rid: str, exc: BaseException) -> None:
    log.exception("unhandled error in request %s", rid, exc_info=exc)


def _response(parts: tuple[int, dict[str, str], bytes]) -> Response:
    status, headers, body = parts
    return Response(body, status, headers={k: v for k, v in headers.items() if k != "content-type"}, media_type=JSON)


async def service_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, errors.ServiceError)
    return _response(error_parts(exc, request_id(request)))


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = HTTP_CODES.get(exc.status_code, errors.InvalidRequest.code)
    rid = request_id(request)
    headers = {"x-request-id": rid, **dict(exc.headers or {})}
    return Response(error_body(rid, code, [str(exc.detail)]), exc.status_code, headers=headers, media_type=JSON)


async def client_disconnected(request: Request, exc: Exception) -> Response:
    """The client went away before its request was read: nobody is left to answer. Logged as such, and
    counted under 499 (nginx's "client closed request"), not as a server error."""
    log.info("client disconnected before the request was read (request %s)", request_id(request))
    return Response(status_code=499)


async def internal_error(request: Request, exc: Exception) -> Response:
    """Starlette raises the exception again once this answer is sent, and uvicorn then closes the
    connection: ``Connection: close`` says so, so a client's next request is not sent into it."""
    rid = request_id(request)
    log_internal_error(rid, exc)
    return _response(error_parts(errors.InternalError(), rid, {"Connection": "close"}))


HANDLERS = {
    errors.ServiceError: service_error,
    ClientDisconnect: client_disconnected,
    HTTPException: http_error,
    Exception: internal_error,
}
