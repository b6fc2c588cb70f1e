"""`agent-sessions reindex`: a store written without the search indexes (an older version) or with
other REPORT_DIMENSIONS. Until reindexed, the API never answers from an incomplete index: a filter
scans, a time sort is 503 index_not_ready; afterwards both use complete indexes."""

from __future__ import annotations

import subprocess
from typing import Any, cast

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.sessions.indexes import Reindexer, SessionIndexes
from tests.support.api import error
from tests.support.keys import KEYS
from tests.support.processes import command, env

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

AGENT = "agt_old"
SESSIONS = f"/v2/agents/{AGENT}/sessions"


def populate(client: TestClient, headers: dict[str, str]) -> None:
    assert client.post("/v2/agents", json={"key": AGENT, "name": "old"}, headers=headers).status_code == 201
    for i, priority in enumerate(["urgent", "low", "urgent", "high"]):
        body: dict[str, Any] = {"key": f"ase_{i}", "metadata": {"priority": priority, "channel": f"c{i % 2}"}}
        assert client.post(SESSIONS, json=body, headers=headers).status_code == 201


def forget_indexes(conn: redis.Redis) -> None:
    """What a store written by the version before these indexes looks like."""
    stale = [
        *conn.scan_iter("as:idx:*"),
        *(KEYS.indexes(tag) for tag in KEYS.tags()),
        *(KEYS.sessions_by(AGENT, o) for o in ("created", "updated")),
    ]
    conn.delete(*stale)


def ids(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [s["id"] for s in response.json()["sessions"]]


def test_an_old_store_is_served_correctly_before_and_after_reindex(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis, redis_url: str
) -> None:
    populate(client, admin)
    created = ids(client.get(SESSIONS, params={"sort": "created_at"}, headers=admin))
    forget_indexes(sync_redis)
    urgent = {"metadata_filter": "priority = 'urgent'"}

    error(client.get(SESSIONS, params={"sort": "-updated_at"}, headers=admin), 503, "index_not_ready")
    assert ids(client.get(SESSIONS, params=urgent, headers=admin)) == ["ase_0", "ase_2"]  # by scanning

    result = subprocess.run([command(), "reindex"], env=env(REDIS_URL=redis_url), capture_output=True, text=True)
    assert result.returncode == 0 and "reindexed 1 agents" in result.stdout, result.stderr
    assert ids(client.get(SESSIONS, params={"sort": "created_at"}, headers=admin)) == created
    assert sync_redis.zrange(KEYS.dimension_index(AGENT, "priority", "urgent"), 0, -1) == ["ase_0", "ase_2"]
    body = client.get(SESSIONS, params=urgent, headers=admin).json()
    assert [s["id"] for s in body["sessions"]] == ["ase_0", "ase_2"] and body["metadata"]["total_count"] == 2
    assert set(cast(dict[str, str], sync_redis.hgetall(KEYS.indexes(KEYS.tag(AGENT))))) >= {
        "sort",
        "dim:priority",
        "dim:channel",
    }


def test_changing_the_dimensions_rebuilds_their_indexes(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis
) -> None:
    populate(client, admin)
    Reindexer(sync_redis, SessionIndexes(KEYS, ("channel",))).run()
    assert not list(sync_redis.scan_iter(KEYS.dimension_prefix(AGENT) + "priority=*"))
    assert sync_redis.zrange(KEYS.dimension_index(AGENT, "channel", "c1"), 0, -1) == ["ase_1", "ase_3"]
    assert set(cast(dict[str, str], sync_redis.hgetall(KEYS.indexes(KEYS.tag(AGENT))))) == {"sort", "dim:channel"}
    # The app still indexes priority on writes, but a filter on it scans until it is marked complete.
    assert ids(client.get(SESSIONS, params={"metadata_filter": "priority = 'low'"}, headers=admin)) == ["ase_1"]
