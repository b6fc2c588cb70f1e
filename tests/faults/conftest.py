from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from tests.support.keys import KEYS
from tests.support.processes import serving


@pytest.fixture
def api(redis_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``agent-sessions serve`` on the test's Redis: (base URL, admin headers)."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(conn, KEYS).create(Role.ADMIN, rate=1e6, burst=10**6)
    conn.close()
    with serving(redis_url) as base:
        yield base, {"x-api-key": secret}
