"""tti_minutes: sessions that expire. Gone for every reader once idle for their time-to-idle (before
the sweep), and removed by the sweep (``Expirer``, lua/session_expire.lua) with a session.expired event,
out of every index, on a real Redis."""

from __future__ import annotations

from datetime import datetime
from typing import Any, cast

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.sessions.expiry import Expirer
from tests.support import stream
from tests.support.api import error
from tests.support.inprocess import InProcess
from tests.support.keys import KEYS
from tests.support.wait import eventually

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

AGENT = "agt_exp"
SESSIONS = f"/v2/agents/{AGENT}/sessions"
SHORT = 0.005  # minutes: 300 ms
DIMS = Settings().report_dimensions


def make_agent(client: TestClient, headers: dict[str, str], **body: Any) -> None:
    response = client.post("/v2/agents", json={"key": AGENT, "name": "expiry", **body}, headers=headers)
    assert response.status_code == 201, response.text


def create(client: TestClient, headers: dict[str, str], key: str, **body: Any) -> dict[str, Any]:
    response = client.post(SESSIONS, json={"key": key, **body}, headers=headers)
    assert response.status_code == 201, response.text
    return cast(dict[str, Any], response.json())


def ms(timestamp: str) -> int:
    return int(datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp() * 1000)


def test_an_idle_session_is_gone_for_readers_and_the_sweep_removes_it_with_its_event(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis, pipeline: InProcess
) -> None:
    make_agent(client, admin)
    session = create(client, admin, "ase_short", tti_minutes=SHORT, metadata={"priority": "urgent"})
    kept = create(client, admin, "ase_kept", metadata={"priority": "urgent"})
    assert session["tti_minutes"] == SHORT and kept["tti_minutes"] == 0 and kept["expires_at"] is None
    stored = sync_redis.hgetall(KEYS.session(AGENT, "ase_short"))
    assert ms(session["expires_at"]) == int(stored["updated_at"]) + 300
    assert sync_redis.zscore(KEYS.expiry(KEYS.tag(AGENT)), f"{AGENT}/ase_short") == int(stored["updated_at"]) + 300

    url = f"{SESSIONS}/ase_short"
    eventually(lambda: client.get(url, headers=admin).status_code == 404)
    # Not swept yet: still stored, yet gone for every reader and writer.
    assert sync_redis.exists(KEYS.session(AGENT, "ase_short"))
    error(client.patch(url, json={"description": "late"}, headers=admin), 404, "session_not_found")
    error(client.delete(url, headers=admin), 404, "session_not_found")
    listed = client.get(SESSIONS, headers=admin).json()
    assert [s["id"] for s in listed["sessions"]] == ["ase_kept"] and listed["metadata"]["total_count"] == 1
    filtered = client.get(SESSIONS, params={"metadata_filter": "priority = 'urgent'"}, headers=admin).json()
    assert [s["id"] for s in filtered["sessions"]] == ["ase_kept"] and filtered["metadata"]["total_count"] == 1
    # Every count leaves it at its expires_at too, whichever way it is counted (an index's size or a walk).
    for params in (
        {},
        {"metadata_filter": "priority = 'urgent'"},
        {"enabled": "true"},
        {"metadata_filter": "x IS NULL"},
    ):
        assert client.get(f"{SESSIONS}/count", params=params, headers=admin).json() == {"count": 1, "page_key": None}
        paged = client.get(SESSIONS, params={**params, "limit": 1}, headers=admin).json()["metadata"]
        assert paged["total_count"] == 1, params

    assert Expirer(sync_redis, KEYS, dimensions=DIMS).step() == {"expired": 1}
    assert not sync_redis.exists(KEYS.session(AGENT, "ase_short"), KEYS.history(AGENT, "ase_short"))
    assert sync_redis.zrange(KEYS.dimension_index(AGENT, "priority", "urgent"), 0, -1) == ["ase_kept"]
    assert sync_redis.zcard(KEYS.expiry(KEYS.tag(AGENT))) == 0
    for index in (KEYS.sessions(AGENT), KEYS.sessions_by(AGENT, "created"), KEYS.sessions_by(AGENT, "updated")):
        assert sync_redis.zrange(index, 0, -1) == ["ase_kept"]
    assert client.get(f"{SESSIONS}/count", headers=admin).json() == {"count": 1, "page_key": None}
    expired = [f for _, f in stream.entries(sync_redis) if f["type"] == "session.expired"]
    assert len(expired) == 1 and expired[0]["session_key"] == "ase_short"
    assert expired[0]["actor"] == "system" and expired[0]["version"] == "2"
    pipeline.drain()  # the relay appends the events to the log
    events = client.get("/v2/events", params={"types": "session.expired"}, headers=admin).json()["events"]
    assert [(e["session_key"], e["session"]["tti_minutes"]) for e in events] == [("ase_short", SHORT)]
    assert Expirer(sync_redis, KEYS, dimensions=DIMS).step() == {}  # nothing is expired twice


def test_a_change_restarts_the_idle_time_and_the_sweep_keeps_a_session_changed_since_it_looked(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis
) -> None:
    make_agent(client, admin)
    create(client, admin, "ase_1", tti_minutes=1)
    member = f"{AGENT}/ase_1"
    first = sync_redis.zscore(KEYS.expiry(KEYS.tag(AGENT)), member)
    assert client.patch(f"{SESSIONS}/ase_1", json={"description": "x"}, headers=admin).status_code == 200
    updated_at = int(sync_redis.hget(KEYS.session(AGENT, "ase_1"), "updated_at") or 0)
    assert sync_redis.zscore(KEYS.expiry(KEYS.tag(AGENT)), member) == updated_at + 60_000 >= (first or 0)
    # A stale entry (as if the sweep read the index before the PATCH): the script checks, and keeps it.
    sync_redis.zadd(KEYS.expiry(KEYS.tag(AGENT)), {member: 0})
    assert Expirer(sync_redis, KEYS, dimensions=DIMS).step() == {"kept": 1}
    assert sync_redis.zscore(KEYS.expiry(KEYS.tag(AGENT)), member) == updated_at + 60_000
    # A PATCH to tti_minutes 0: never expires, out of the expiry index.
    response = client.patch(f"{SESSIONS}/ase_1", json={"tti_minutes": 0}, headers=admin)
    assert response.status_code == 200 and response.json()["expires_at"] is None
    assert sync_redis.zscore(KEYS.expiry(KEYS.tag(AGENT)), member) is None
    history = client.get(f"{SESSIONS}/ase_1/history", headers=admin).json()["history"]
    assert history[0]["changes"] == {"tti_minutes": {"old": 1, "new": 0}}


def test_the_agents_default_applies_to_sessions_that_do_not_say(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis
) -> None:
    make_agent(client, admin, default_tti_minutes=30)
    assert client.get(f"/v2/agents/{AGENT}", headers=admin).json()["default_tti_minutes"] == 30
    assert create(client, admin, "ase_default")["tti_minutes"] == 30
    assert create(client, admin, "ase_never", tti_minutes=0)["tti_minutes"] == 0
    assert client.patch(f"/v2/agents/{AGENT}", json={"default_tti_minutes": 1.5}, headers=admin).status_code == 200
    assert create(client, admin, "ase_later")["tti_minutes"] == 1.5
    assert sorted(cast(list[str], sync_redis.zrange(KEYS.expiry(KEYS.tag(AGENT)), 0, -1))) == [
        f"{AGENT}/ase_default",
        f"{AGENT}/ase_later",
    ]
    for bad in (-1, "5", True, 10 * 365 * 24 * 60 + 1):
        error(client.post(SESSIONS, json={"tti_minutes": bad}, headers=admin), 400, "invalid_request")
        error(client.patch(f"{SESSIONS}/ase_never", json={"tti_minutes": bad}, headers=admin), 400, "invalid_request")
