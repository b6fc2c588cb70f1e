"""GET /v2/events and /v2/events/{event_id} through the app, and the log's retention, on a real Redis,
with a relay running (it appends each event to the log)."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.events.feed import decode_cursor, encode_cursor
from agent_sessions.events.store import LogWriter, Retention
from agent_sessions.web.app import create_app
from tests.support import stream
from tests.support.api import MakeKey, error
from tests.support.keys import KEYS
from tests.support.wait import eventually

AGENTS = ("agt_a", "agt_b")
pytestmark = [pytest.mark.usefixtures("relaying"), pytest.mark.both_topologies]


def logged(client: TestClient, admin: dict[str, str], events: int) -> None:
    """Wait until the relay has appended ``events`` events to the log."""
    eventually(lambda: len(follow(client, admin, 1000)) >= events, f"{events} events not in the log")


def make_events(client: TestClient, admin: dict[str, str]) -> None:
    """agt_a: ase_1 created, updated twice; agt_b: ase_1 created, deleted."""
    for agent in AGENTS:
        assert client.post("/v2/agents", json={"key": agent, "name": agent}, headers=admin).status_code == 201
        assert client.post(f"/v2/agents/{agent}/sessions", json={"key": "ase_1"}, headers=admin).status_code == 201
    for priority in ("high", "low"):  # no escalation (that would be an event of its own)
        url = "/v2/agents/agt_a/sessions/ase_1"
        assert client.patch(url, json={"metadata": {"priority": priority}}, headers=admin).status_code == 200
    assert client.delete("/v2/agents/agt_b/sessions/ase_1", headers=admin).status_code == 204
    logged(client, admin, 5)


def follow(client: TestClient, headers: dict[str, str], limit: int, **params: str) -> list[dict[str, Any]]:
    """Every event from the start, page after page."""
    events: list[dict[str, Any]] = []
    query: dict[str, Any] = {"limit": limit, **params}
    while True:
        response = client.get("/v2/events", params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        events += body["events"]
        query["after"] = body["metadata"]["next_cursor"]
        if not body["metadata"]["has_more"]:
            return events


def test_pages_return_every_event_once_in_commit_order(client: TestClient, admin: dict[str, str]) -> None:
    assert KEYS.tag("agt_a") != KEYS.tag("agt_b")  # two outboxes: the relay puts them in commit order
    make_events(client, admin)
    for limit in (1, 2, 100):
        events = follow(client, admin, limit)
        assert [(e["agent_key"], e["type"], e["version"]) for e in events] == [
            ("agt_a", "session.created", 1),
            ("agt_b", "session.created", 1),
            ("agt_a", "session.updated", 2),
            ("agt_a", "session.updated", 3),
            ("agt_b", "session.deleted", 2),
        ]
    updated = follow(client, admin, 100, types="session.updated")[-1]
    assert updated["changes"]["metadata"] == {"old": {"priority": "high"}, "new": {"priority": "low"}}
    assert updated["session"]["metadata"] == {"priority": "low"}
    one = client.get(f"/v2/events/{updated['event_id']}", headers=admin)
    assert one.status_code == 200 and one.json() == updated


def test_the_relay_appends_each_event_once(sync_redis: redis.Redis) -> None:
    """events_append.lua: in the order given, skipping what the log has (a batch relayed again)."""
    writer = LogWriter(sync_redis, KEYS, chunk=2)

    def entry(event_id: str) -> dict[str, str]:
        return {"type": "session.updated", "event_id": event_id, "agent_key": "agt_a", "version": "2"}

    assert writer.append([entry("evt_1"), entry("evt_2")]) == 2
    assert writer.append([entry("evt_2"), entry("evt_3"), entry("evt_4")]) == 2  # two calls of at most 2
    logged = stream.entries(sync_redis, KEYS.events)
    assert [fields for _, fields in logged] == [entry(f"evt_{n}") for n in range(1, 5)]
    assert sync_redis.hgetall(KEYS.event_ids) == {f"evt_{n}": logged[n - 1][0] for n in range(1, 5)}


def test_filters_combine(client: TestClient, admin: dict[str, str]) -> None:
    make_events(client, admin)
    assert [e["type"] for e in follow(client, admin, 2, agent_key="agt_b")] == ["session.created", "session.deleted"]
    assert len(follow(client, admin, 2, session_key="ase_1")) == 5
    created = follow(client, admin, 1, types="session.created,session.deleted", agent_key="agt_a")
    assert [e["type"] for e in created] == ["session.created"]
    nobody = client.get("/v2/events", params={"agent_key": "agt_nobody"}, headers=admin)
    error(nobody, 404, "agent_not_found")  # as the stream, and every agent resource


def test_bad_queries_are_400_and_change_nothing(client: TestClient, admin: dict[str, str]) -> None:
    make_events(client, admin)
    for query in (
        {"after": "nope"},
        {"after": encode_cursor("1-1")[:-2] + "!!"},
        {"after": "c1." + "QQ"},
        {"types": "session.exploded"},
        {"types": ""},
        {"limit": "0"},
        {"limit": "1001"},
        {"wait": "31"},
        {"wait": "-1"},
        {"agent_key": "nope"},
    ):
        error(client.get("/v2/events", params=query, headers=admin), 400, "invalid_request")
    error(client.get("/v2/events/evt_missing", headers=admin), 404, "event_not_found")
    error(client.get("/v2/events/not-an-id", headers=admin), 404, "event_not_found")


def test_a_scoped_key_sees_only_its_agents(client: TestClient, admin: dict[str, str], make_key: MakeKey) -> None:
    make_events(client, admin)
    scoped = {"x-api-key": make_key("viewer", ("agt_b",))}
    assert {e["agent_key"] for e in follow(client, scoped, 1)} == {"agt_b"}
    error(client.get("/v2/events", params={"agent_key": "agt_a"}, headers=scoped), 403, "forbidden")
    error(client.get("/v2/events/stream", params={"agent_key": "agt_a"}, headers=scoped), 403, "forbidden")
    other = follow(client, admin, 100, agent_key="agt_a")[0]["event_id"]
    error(client.get(f"/v2/events/{other}", headers=scoped), 404, "event_not_found")  # as if it did not exist
    error(client.get("/v2/events", headers={}), 401, "unauthorized")


def test_retention_trims_by_count_and_age_and_expired_cursors_are_410(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis
) -> None:
    make_events(client, admin)
    first_two = client.get("/v2/events", params={"limit": 2}, headers=admin).json()
    cursor, dropped = first_two["metadata"]["next_cursor"], first_two["events"]
    assert Retention(sync_redis, KEYS, retention_s=3600, max_events=3, batch=2).step() == 2  # bounded steps
    assert sync_redis.xlen(KEYS.events) == 3 and sync_redis.hlen(KEYS.event_ids) == 3
    assert len(follow(client, admin, 10)) == 3  # from the start: what is retained
    assert len(client.get("/v2/events", params={"after": cursor}, headers=admin).json()["events"]) == 3
    error(client.get(f"/v2/events/{dropped[0]['event_id']}", headers=admin), 404, "event_not_found")
    before = encode_cursor("1-0")
    error(client.get("/v2/events", params={"after": before}, headers=admin), 410, "cursor_expired")

    error(client.get("/v2/events/stream", params={"after": before}, headers=admin), 410, "cursor_expired")
    error(client.get("/v2/events/stream", headers={**admin, "Last-Event-ID": before}), 410, "cursor_expired")

    by_age = Retention(sync_redis, KEYS, retention_s=0, max_events=1000)  # everything written before now
    eventually(lambda: by_age.step() == 0 and sync_redis.xlen(KEYS.events) == 0, "not trimmed by age")
    error(client.get("/v2/events", params={"after": cursor}, headers=admin), 410, "cursor_expired")
    empty = client.get("/v2/events", headers=admin).json()
    assert empty["events"] == [] and not empty["metadata"]["has_more"]
    assert (
        client.get("/v2/events", params={"after": empty["metadata"]["next_cursor"]}, headers=admin).status_code == 200
    )


def test_a_long_poll_returns_when_a_matching_event_commits(client: TestClient, admin: dict[str, str]) -> None:
    make_events(client, admin)
    end = follow(client, admin, 100)
    cursor = client.get("/v2/events", params={"limit": len(end)}, headers=admin).json()["metadata"]["next_cursor"]
    got: list[Any] = []

    def poll() -> None:
        params = {"after": cursor, "wait": "30", "agent_key": "agt_a"}
        got.append(client.get("/v2/events", params=params, headers=admin))

    waiter = threading.Thread(target=poll)
    waiter.start()
    # An event of another agent does not end the wait; one of agt_a does.
    client.post("/v2/agents/agt_b/sessions", json={"key": "ase_2"}, headers=admin)
    client.patch("/v2/agents/agt_a/sessions/ase_1", json={"description": "now"}, headers=admin)
    waiter.join(20)
    assert not waiter.is_alive(), "the long poll did not return when the event committed"
    (response,) = got
    assert [(e["agent_key"], e["changes"]) for e in response.json()["events"]] == [
        ("agt_a", {"description": {"old": "", "new": "now"}})
    ]


def test_cursors_are_opaque_and_round_trip() -> None:
    assert decode_cursor(encode_cursor("1732550000000-7")) == "1732550000000-7"
    assert encode_cursor("1-0").startswith("c1.")


def test_a_page_examines_at_most_events_scan_max_entries(redis_url: str, admin: dict[str, str]) -> None:
    """A filter that matches nothing costs a bounded scan per request; the cursor goes on past it."""
    with TestClient(create_app(Settings(redis_url=redis_url, events_scan_max=100))) as client:
        make_events(client, admin)
        for i in range(150):  # agt_a's events, none of which the filter below matches
            client.patch("/v2/agents/agt_a/sessions/ase_1", json={"description": str(i)}, headers=admin)
        logged(client, admin, 155)
        first = client.get("/v2/events", params={"agent_key": "agt_b", "types": "session.updated"}, headers=admin)
        body = first.json()
        assert body["events"] == [] and body["metadata"]["has_more"]  # stopped after 100 entries
        rest = follow(
            client, admin, 100, agent_key="agt_b", types="session.updated", after=body["metadata"]["next_cursor"]
        )
        assert rest == []


def test_an_escalation_is_an_event_of_the_log_once(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=admin).status_code == 201
    created = client.post(
        "/v2/agents/agt_a/sessions", json={"key": "ase_1", "metadata": {"priority": "high"}}, headers=admin
    )
    assert created.status_code == 201
    patched = client.patch("/v2/agents/agt_a/sessions/ase_1", json={"metadata": {"priority": "urgent"}}, headers=admin)
    assert patched.status_code == 200
    (escalated,) = eventually(lambda: follow(client, admin, 10, types="session.escalated"), "no escalation in the log")
    (update,) = follow(client, admin, 10, types="session.updated")
    assert escalated["event_id"].startswith("esc_") and escalated["type"] == "session.escalated"
    assert escalated["update_event_id"] == update["event_id"] and escalated["version"] == update["version"] == 2
    assert escalated["rule"] == "priority" and escalated["rules"] == ["priority"]
    assert escalated["session"] == patched.json() and escalated["agent_key"] == "agt_a"
    assert client.get(f"/v2/events/{escalated['event_id']}", headers=admin).json() == escalated
    logged = follow(client, admin, 100)
    assert [e["type"] for e in logged] == ["session.created", "session.updated", "session.escalated"]
