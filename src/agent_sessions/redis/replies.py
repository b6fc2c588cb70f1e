"""What the scripts' statuses mean: the one table from a Lua status string to the domain error it
stands for. A script's first reply element is its status; a status not in the table (``ok``,
``noop``, ``applied``…) is a success, read by the caller.

Statuses are unique across scripts, so one table serves them all. ``exists`` is what session_create
stored in idempotency records before it said ``session_exists``: such a record is replayed for up to
``IDEMPOTENCY_TTL`` after an upgrade, so the old word keeps its meaning.
"""

from __future__ import annotations

from collections.abc import Callable

from agent_sessions.errors import (
    AgentAlreadyExists,
    AgentNotFound,
    IdempotencyKeyReused,
    IndexNotReady,
    PreconditionFailed,
    ServiceError,
    SessionAlreadyExists,
    SessionNotFound,
    Unauthorized,
)

ERRORS: dict[str, Callable[[], ServiceError]] = {
    "agent_not_found": AgentNotFound,
    "session_not_found": SessionNotFound,
    "agent_exists": AgentAlreadyExists,
    "agent_purging": lambda: AgentAlreadyExists(
        "an agent with this key is still being deleted; retry in a few seconds"
    ),
    "session_exists": SessionAlreadyExists,
    "exists": SessionAlreadyExists,
    "precondition_failed": PreconditionFailed,
    "idempotency_mismatch": IdempotencyKeyReused,
    "index_not_ready": IndexNotReady,
    "unknown": lambda: Unauthorized("unknown API key"),
    "revoked": lambda: Unauthorized("API key revoked"),
}


def raise_for(status: str) -> None:
    """Raise the domain error ``status`` stands for; return when it is a success."""
    error = ERRORS.get(status)
    if error is not None:
        raise error()
