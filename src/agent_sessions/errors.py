"""One error hierarchy for the whole service.

Domain code raises these. Each class states, once, its HTTP ``status``, its ``code`` (the stable
machine-readable string clients switch on) and a one-line ``description`` of when it happens:
``web/errors.py`` answers with the status, and ``/openapi.json`` documents each status with the
descriptions of its classes. ``messages`` are for people; ``field_errors`` name the fields at fault
(``metadata.priority``) where there are any.
"""

from __future__ import annotations

from typing import Self


class AgentSessionsError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AgentSessionsError):
    """Settings are missing or invalid; the process should not start."""


class ServiceError(AgentSessionsError):
    status = 500
    code = "internal_error"
    default_message = "internal error"
    description = ""  # when it happens, for the API's documentation (empty: a base class, not raised)
    protocol = False  # answered by the HTTP edge for every path (not listed per operation)
    # True when this error is the stored outcome of an earlier request with the same Idempotency-Key.
    replayed = False

    def __init__(self, *messages: str, field_errors: dict[str, str] | None = None) -> None:
        self.messages = list(messages) or [self.default_message]
        self.field_errors = field_errors or {}
        super().__init__("; ".join(self.messages))


class InvalidRequest(ServiceError):
    status = 400
    description = "body not JSON or not an object, unknown field, wrong type, bad path key or query"
    code = "invalid_request"
    default_message = "invalid request"

    @classmethod
    def for_fields(cls, field_errors: dict[str, str]) -> Self:
        return cls(*(f"{k}: {v}" for k, v in field_errors.items()), field_errors=field_errors)


class InvalidMetadata(InvalidRequest):
    description = "metadata not an object, or over a limit"
    code = "invalid_metadata"
    default_message = "invalid metadata"


class Unauthorized(ServiceError):
    status = 401
    description = "API key missing, unknown, malformed or revoked"
    code = "unauthorized"
    default_message = "missing or invalid API key"


class TokenExpired(Unauthorized):
    description = "the client token is past its expiry: the page gets a new one from its backend"
    code = "token_expired"
    default_message = "client token expired"


class Forbidden(ServiceError):
    status = 403
    description = "the key's role or agent scope does not allow this"
    code = "forbidden"
    default_message = "this API key may not do this"


class NotFound(ServiceError):
    status = 404
    code = "not_found"
    default_message = "not found"


class RouteNotFound(NotFound):
    description = "no such path (a trailing slash makes another path; nothing redirects)"
    protocol = True


class MethodNotAllowed(ServiceError):
    status = 405
    description = "the path does not take this method (Allow lists those it takes)"
    code = "method_not_allowed"
    default_message = "method not allowed"
    protocol = True


class RequestTimeout(ServiceError):
    status = 408
    description = "the request line, headers and body did not arrive within REQUEST_READ_TIMEOUT"
    code = "request_timeout"
    default_message = "the request did not arrive in time"
    protocol = True


class HeadersTooLarge(ServiceError):
    status = 431
    description = "request line and headers over MAX_HEADER_BYTES"
    code = "request_header_fields_too_large"
    default_message = "request line and headers are too large"
    protocol = True


class InternalError(ServiceError):
    description = "a fault of the service; the answer says Connection: close, the log has the request id"
    default_message = "internal error; quote the request id to support"
    protocol = True


class AgentNotFound(NotFound):
    description = "no such agent"
    code = "agent_not_found"
    default_message = "agent not found"


class SessionNotFound(NotFound):
    description = "no such session"
    code = "session_not_found"
    default_message = "session not found"


class EventNotFound(NotFound):
    description = "no such event in the event log (never written, or past its retention)"
    code = "event_not_found"
    default_message = "event not found"


class WebhookEndpointNotFound(NotFound):
    description = "no such webhook endpoint"
    code = "webhook_endpoint_not_found"
    default_message = "webhook endpoint not found"


class DeliveryNotFound(NotFound):
    description = "the endpoint has no delivery of this message (never sent to it, or dropped from its log)"
    code = "delivery_not_found"
    default_message = "no such delivery for this endpoint"


class EventGone(ServiceError):
    status = 410
    description = "the message was delivered and its event is no longer in the event log, so it cannot be rebuilt"
    code = "event_gone"
    default_message = "this event is past the event log's retention; it cannot be sent again"


class CursorExpired(ServiceError):
    status = 410
    description = "the cursor points before events the log no longer keeps (EVENTS_RETENTION, EVENTS_MAX)"
    code = "cursor_expired"
    default_message = "events after this cursor were trimmed from the log; start again without a cursor"


class AlreadyExists(ServiceError):
    status = 409
    code = "already_exists"


class AgentAlreadyExists(AlreadyExists):
    description = "create with a taken agent key"
    code = "agent_already_exists"
    default_message = "an agent with this key already exists"


class SessionAlreadyExists(AlreadyExists):
    description = "create with a taken session key"
    code = "session_already_exists"
    default_message = "a session with this key already exists"


class LimitReached(ServiceError):
    status = 409
    description = "a bound was reached (WEBHOOK_ENDPOINTS_MAX endpoints, WEBHOOK_BACKLOG_MAX undelivered messages)"
    code = "limit_reached"
    default_message = "a configured bound was reached"


class ManagedBySettings(ServiceError):
    status = 409
    description = "whe_settings is ESCALATION_WEBHOOK_URL: change it in the settings, not through the API"
    code = "managed_by_settings"
    default_message = "this endpoint is configured by ESCALATION_WEBHOOK_URL and ESCALATION_WEBHOOK_SECRET"


class PreconditionFailed(ServiceError):
    status = 412
    description = "If-Match does not match the session's current version"
    code = "precondition_failed"
    default_message = "If-Match does not match the current version"
    current_version: int | None = None  # the session's version now: the answer's ETag


class Conflict(ServiceError):
    status = 409
    description = "a merge patch kept losing the race to other writers; retry"
    code = "conflict"
    default_message = "the session kept changing while this merge patch was applied; retry"


class IdempotencyKeyReused(ServiceError):
    status = 422
    description = "the Idempotency-Key was used before with a different request"
    code = "idempotency_key_reused"
    default_message = "this Idempotency-Key was used before with a different request"


class RequestTooLarge(ServiceError):
    status = 413
    description = "the body is over the size limit"
    code = "request_too_large"
    default_message = "request body too large"


class UnsupportedMediaType(ServiceError):
    status = 415
    description = "Content-Type or Content-Encoding not accepted"
    code = "unsupported_media_type"
    default_message = "Content-Type must be application/json"


class RateLimited(ServiceError):
    status = 429
    description = (
        "the key's rate limit, too many failed authentications from the address, or SSE_MAX_PER_KEY live"
        " streams of the key; retry after Retry-After seconds"
    )
    code = "rate_limit_exceeded"
    default_message = "rate limit exceeded"

    def __init__(self, retry_after: int, *messages: str, reason: str = "key") -> None:
        super().__init__(*messages)
        self.retry_after = retry_after
        self.reason = reason  # "key": the key's bucket; "address": failed authentications


class InsufficientStorage(ServiceError):
    status = 507
    description = "the data store is full (maxmemory); nothing was changed"
    code = "insufficient_storage"
    default_message = "the data store is full; nothing was changed"


class StoreUnavailable(ServiceError):
    status = 503
    description = "Redis unreachable; retry after Retry-After seconds"
    code = "service_unavailable"
    default_message = "the data store is unavailable; retry shortly"


class ReplicasBehind(StoreUnavailable):
    description = (
        "REDIS_MIN_REPLICA_ACKS replicas did not confirm a write in time: it applied on the primary and may"
        " be lost in a failover; retry with the same Idempotency-Key"
    )
    default_message = "the write was not confirmed by enough replicas in time; it may have applied"


class IndexNotReady(ServiceError):
    status = 503
    description = "sort by time on a store whose older sessions are not indexed yet: run agent-sessions reindex"
    code = "index_not_ready"
    default_message = "this store's sessions are not indexed by time yet; an operator runs `agent-sessions reindex`"


def described() -> list[type[ServiceError]]:
    """Every error class the API answers with (those with a description), base classes first: the
    reference of every code the API can return (``reference``, the docs' table, ``/openapi.json``)."""
    found: list[type[ServiceError]] = []
    pending: list[type[ServiceError]] = [ServiceError]
    while pending:
        cls = pending.pop(0)
        if cls.description:
            found.append(cls)
        pending.extend(cls.__subclasses__())
    return found


def reference() -> str:
    """The table of every error code (Markdown), generated from this hierarchy for the docs."""
    rows = ["| HTTP | code | when |", "|---:|---|---|"]
    said = set()
    for cls in sorted(described(), key=lambda c: (c.status, c.code)):
        if (cls.code, cls.description) not in said:  # a subclass that only refines its message
            said.add((cls.code, cls.description))
            rows.append(f"| {cls.status} | `{cls.code}` | {cls.description} |")
    return "\n".join(rows) + "\n"
