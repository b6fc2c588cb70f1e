"""One error hierarchy for the whole service.

Domain code raises these; ``web/errors.py`` maps each class to an HTTP status in one table. The ``code``
is the stable machine-readable string clients switch on; ``messages`` are for people; ``field_errors``
name the fields at fault (``metadata.priority``) where there are any.
"""

from __future__ import annotations

from typing import Self


class AgentSessionsError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(AgentSessionsError):
    """Settings are missing or invalid; the process should not start."""


class ServiceError(AgentSessionsError):
    code = "internal_error"
    default_message = "internal error"
    # True when this error is the stored outcome of an earlier request with the same Idempotency-Key.
    replayed = False

    def __init__(self, *messages: str, field_errors: dict[str, str] | None = None) -> None:
        self.messages = list(messages) or [self.default_message]
        self.field_errors = field_errors or {}
        super().__init__("; ".join(self.messages))


class InvalidRequest(ServiceError):
    code = "invalid_request"
    default_message = "invalid request"

    @classmethod
    def for_fields(cls, field_errors: dict[str, str]) -> Self:
        return cls(*(f"{k}: {v}" for k, v in field_errors.items()), field_errors=field_errors)


class InvalidMetadata(InvalidRequest):
    code = "invalid_metadata"
    default_message = "invalid metadata"


class Unauthorized(ServiceError):
    code = "unauthorized"
    default_message = "missing or invalid API key"


class Forbidden(ServiceError):
    code = "forbidden"
    default_message = "this API key may not do this"


class NotFound(ServiceError):
    code = "not_found"
    default_message = "not found"


class AgentNotFound(NotFound):
    code = "agent_not_found"
    default_message = "agent not found"


class SessionNotFound(NotFound):
    code = "session_not_found"
    default_message = "session not found"


class AlreadyExists(ServiceError):
    code = "already_exists"


class AgentAlreadyExists(AlreadyExists):
    code = "agent_already_exists"
    default_message = "an agent with this key already exists"


class SessionAlreadyExists(AlreadyExists):
    code = "session_already_exists"
    default_message = "a session with this key already exists"


class PreconditionFailed(ServiceError):
    code = "precondition_failed"
    default_message = "If-Match does not match the current version"


class Conflict(ServiceError):
    code = "conflict"
    default_message = "the session kept changing while this merge patch was applied; retry"


class IdempotencyKeyReused(ServiceError):
    code = "idempotency_key_reused"
    default_message = "this Idempotency-Key was used before with a different request"


class RequestTooLarge(ServiceError):
    code = "request_too_large"
    default_message = "request body too large"


class UnsupportedMediaType(ServiceError):
    code = "unsupported_media_type"
    default_message = "Content-Type must be application/json"


class RateLimited(ServiceError):
    code = "rate_limit_exceeded"
    default_message = "rate limit exceeded"

    def __init__(self, retry_after: int, *messages: str, reason: str = "key") -> None:
        super().__init__(*messages)
        self.retry_after = retry_after
        self.reason = reason  # "key": the key's bucket; "address": failed authentications


class InsufficientStorage(ServiceError):
    code = "insufficient_storage"
    default_message = "the data store is full; nothing was changed"


class StoreUnavailable(ServiceError):
    code = "service_unavailable"
    default_message = "the data store is unavailable; retry shortly"
