"""Properties of metadata validation through the API: a rejected body changes nothing (no write, no
event, no history); an accepted body round-trips exactly."""

from __future__ import annotations

import json
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from tests.support import stream
from tests.support.api import SEED_AGENT, SEED_SESSION
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"

# Values that cross every limit now and then: long/empty keys, deep nesting, big numbers, many keys.
keys = st.one_of(st.text(max_size=4), st.text(min_size=60, max_size=70), st.just(""))
numbers = st.one_of(st.integers(-(2**65), 2**65), st.floats(allow_nan=False, allow_infinity=False))
leaves = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=8))
values = st.recursive(
    leaves, lambda inner: st.lists(inner, max_size=2) | st.dictionaries(keys, inner, max_size=2), max_leaves=10
)
metadata = st.dictionaries(keys, values, max_size=6) | st.dictionaries(
    st.text(min_size=1, max_size=3), st.none(), min_size=60, max_size=70
)


def violates(value: Any, depth: int = 1, top: bool = True) -> bool:
    """An independent statement of the default limits (README, "The PATCH")."""
    if isinstance(value, dict):
        if depth > 5 or (top and len(value) > 64):
            return True
        return any(not 1 <= len(k) <= 64 or violates(v, depth + 1, False) for k, v in value.items())
    if isinstance(value, list):
        return depth > 5 or any(violates(v, depth + 1, False) for v in value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return not -(2**63) <= value <= 2**63 - 1
    return False


def state(sync_redis: redis.Redis) -> tuple[Any, ...]:
    return (
        sync_redis.hgetall(KEYS.session(SEED_AGENT, SEED_SESSION)),
        stream.outbox_length(sync_redis),
        sync_redis.llen(KEYS.history(SEED_AGENT, SEED_SESSION)),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=metadata)
def test_rejected_changes_nothing_accepted_round_trips(
    client: TestClient, admin: dict[str, str], seeded: Any, sync_redis: redis.Redis, body: dict[str, Any]
) -> None:
    before = state(sync_redis)
    raw = json.dumps({"metadata": body})  # the standard library: it writes integers of any size
    response = client.patch(URL, content=raw, headers={**admin, "content-type": "application/json"})
    too_big = len(json.dumps(body, separators=(",", ":"))) > 16 * 1024
    if response.status_code == 400:
        assert violates(body) or too_big, (body, response.text)
        assert response.json()["code"] in ("invalid_metadata", "invalid_request")
        assert state(sync_redis) == before
    else:
        assert response.status_code == 200 and not violates(body), response.text
        assert response.json()["metadata"] == body
        assert client.get(URL, headers=admin).json()["metadata"] == body
