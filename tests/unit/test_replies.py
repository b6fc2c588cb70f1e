"""The one table from script statuses to domain errors."""

from __future__ import annotations

import pytest

from agent_sessions import errors
from agent_sessions.redis.replies import ERRORS, raise_for


@pytest.mark.parametrize(
    ("status", "error", "code"),
    [
        ("agent_not_found", errors.AgentNotFound, "agent_not_found"),
        ("session_not_found", errors.SessionNotFound, "session_not_found"),
        ("agent_exists", errors.AgentAlreadyExists, "agent_already_exists"),
        ("agent_purging", errors.AgentAlreadyExists, "agent_already_exists"),
        ("session_exists", errors.SessionAlreadyExists, "session_already_exists"),
        ("exists", errors.SessionAlreadyExists, "session_already_exists"),  # stored by earlier releases
        ("precondition_failed", errors.PreconditionFailed, "precondition_failed"),
        ("idempotency_mismatch", errors.IdempotencyKeyReused, "idempotency_key_reused"),
        ("unknown", errors.Unauthorized, "unauthorized"),
        ("revoked", errors.Unauthorized, "unauthorized"),
    ],
)
def test_each_status_raises_its_error(status: str, error: type[errors.ServiceError], code: str) -> None:
    with pytest.raises(error) as raised:
        raise_for(status)
    assert type(raised.value) is error and raised.value.code == code


def test_successes_raise_nothing_and_the_table_has_no_success() -> None:
    for status in ("ok", "noop", "replay", "applied", "duplicate", "new"):
        raise_for(status)
        assert status not in ERRORS


def test_purging_says_to_retry() -> None:
    with pytest.raises(errors.AgentAlreadyExists, match="still being deleted"):
        raise_for("agent_purging")
