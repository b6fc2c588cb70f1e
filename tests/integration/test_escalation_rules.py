"""Per-agent escalation rules: read, replaced, tested, validated, and used by the escalation actor (the
escalated event names the rule); agents without rules of their own use the settings' defaults."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from standardwebhooks import Webhook
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from tests.support.api import MakeKey, caller
from tests.support.inprocess import InProcess
from tests.support.keys import KEYS
from tests.support.receiver import Receiver

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

A, B = "agt_a", "agt_b"
RULES = f"/v2/agents/{A}/escalation_rules"
VIP = {
    "rules": [
        {"name": "vip", "path": "metadata.customer.tier", "becomes": ["vip", "platinum"]},
        {"name": "level", "path": "metadata.escalation_level", "changes": True},
    ]
}


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, webhook_allow_private_networks=True)


@pytest.fixture
def api(client: TestClient, admin: dict[str, str]) -> Any:
    return caller(client, admin, (A, B))


def test_an_agent_without_rules_shows_the_defaults_and_its_own_once_put(api: Any, sync_redis: redis.Redis) -> None:
    defaults = api("GET", RULES)
    assert defaults["source"] == "settings" and defaults["agent_key"] == A
    assert {"name": "priority", "path": "metadata.priority", "becomes": ["urgent"]} in defaults["rules"]
    assert {"name": "escalation_level", "path": "metadata.escalation_level", "changes": True} in defaults["rules"]
    put = api("PUT", RULES, json=VIP)
    assert put == {"agent_key": A, "rules": VIP["rules"], "source": "agent"} == api("GET", RULES)
    assert api("GET", f"/v2/agents/{B}/escalation_rules")["source"] == "settings"
    assert api("GET", "/v2/agents/agt_missing/escalation_rules", 404)["code"] == "agent_not_found"
    assert api("PUT", "/v2/agents/agt_missing/escalation_rules", 404, json=VIP)["code"] == "agent_not_found"
    assert sync_redis.exists(KEYS.escalation_rules("agt_missing")) == 0  # rules_put.lua wrote nothing


@pytest.mark.parametrize(
    ("old", "new", "fired"),
    [
        ({}, {"customer": {"tier": "vip"}}, ["vip"]),
        ({"customer": {"tier": "vip"}}, {"customer": {"tier": "platinum"}}, []),  # listed before: not new
        ({"customer": {"tier": "vip"}}, {"customer": {}}, []),  # disappearing never escalates
        ({"escalation_level": 1}, {"escalation_level": 1.0}, []),  # the same JSON number
        ({"escalation_level": 1}, {"escalation_level": True}, ["level"]),  # a boolean is not a number
        ({"escalation_level": 1}, {}, []),
        ({}, {"escalation_level": 1, "customer": {"tier": "platinum"}}, ["vip", "level"]),
        ({}, {"customer": "vip"}, []),  # not an object: the path is absent
    ],
)
def test_the_test_endpoint_says_which_rules_fire(
    api: Any, old: dict[str, Any], new: dict[str, Any], fired: list[str]
) -> None:
    api("PUT", RULES, json=VIP)
    assert api("POST", f"{RULES}/test", json={"old": old, "new": new}) == {"fired": fired}


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"rules": [{"name": "x", "path": "metadata.a"}]}, "rules.0"),
        ({"rules": [{"name": "x", "path": "metadata.a", "becomes": ["v"], "changes": True}]}, "rules.0"),
        ({"rules": [{"name": "x", "path": "metadata.a", "changes": False}]}, "rules.0"),
        ({"rules": [{"name": "x", "path": "priority", "changes": True}]}, "rules.0.path"),
        ({"rules": [{"name": "x", "path": "metadata.a.b.c.d.e.f", "changes": True}]}, "rules.0.path"),
        ({"rules": [{"name": "bad name", "path": "metadata.a", "changes": True}]}, "rules.0.name"),
        ({"rules": [{"name": "x", "path": "metadata.a", "becomes": []}]}, "rules.0.becomes"),
        ({"rules": [{"name": "x", "path": "metadata.a", "becomes": [{"o": 1}]}]}, "rules.0.becomes.0"),
        (
            {
                "rules": [
                    {"name": "x", "path": "metadata.a", "changes": True},
                    {"name": "x", "path": "metadata.b", "changes": True},
                ]
            },
            "rules.1.name",
        ),
        ({"rules": [{"name": f"r{i}", "path": "metadata.a", "changes": True} for i in range(33)]}, "rules"),
        ({"rules": [{"name": "x", "path": "metadata.a", "becomes": list(range(33))}]}, "rules.0.becomes"),
        ({"rules": [{"name": "x", "path": "metadata.a", "becomes": ["v" * 1025]}]}, "rules.0.becomes.0"),
        ({"rules": [{"name": "x", "path": "metadata.a", "changes": True, "when": "now"}]}, "rules.0.when"),
    ],
)
def test_a_bad_rule_is_400_naming_the_field_and_changes_nothing(api: Any, body: dict[str, Any], field: str) -> None:
    api("PUT", RULES, json=VIP)
    error = api("PUT", RULES, 400, json=body)
    assert error["code"] == "invalid_request" and any(k.startswith(field) for k in error["field_errors"]), error
    assert api("GET", RULES)["rules"] == VIP["rules"]


def test_the_escalated_event_names_the_rule_and_each_agent_uses_its_own_rules(
    api: Any, pipeline: InProcess, receiver: Receiver
) -> None:
    made = api("POST", "/v2/webhook_endpoints", 201, json={"url": receiver.url, "event_types": ["session.escalated"]})
    api("PUT", RULES, json=VIP)
    for agent in (A, B):
        api("POST", f"/v2/agents/{agent}/sessions", 201, json={"key": "ase_1", "metadata": {"customer": {"tier": "x"}}})
    sessions = {agent: f"/v2/agents/{agent}/sessions/ase_1" for agent in (A, B)}
    api("PATCH", sessions[A], json={"metadata": {"priority": "urgent"}})  # a default rule: not A's
    api("PATCH", sessions[A], json={"metadata": {"customer": {"tier": "vip"}}})  # A's vip rule
    api("PATCH", sessions[A], json={"metadata": {}})  # disappearing: nothing
    api("PATCH", sessions[B], json={"metadata": {"customer": {"tier": "vip"}}})  # not B's rule
    api("PATCH", sessions[B], json={"metadata": {"priority": "urgent"}})  # B's default
    pipeline.drain()
    got = [Webhook(made["secret"]).verify(d.body, d.headers) for d in receiver.wait_for(2)]
    pipeline.drain()
    by_agent = {m["data"]["agent_key"]: m["data"] for m in got}
    assert len(got) == 2 and by_agent[A]["rule"] == "vip" and by_agent[B]["rule"] == "priority"
    assert by_agent[A]["session"]["metadata"] == {"customer": {"tier": "vip"}}
    assert all(d.headers["webhook-id"].startswith("esc_") for d in receiver.deliveries)
    assert api("GET", f"/v2/agents/{A}/report")["escalations"] == {"total": 1}


def test_rules_need_an_admin_to_change_and_a_viewer_to_read(client: TestClient, api: Any, make_key: MakeKey) -> None:
    viewer = {"x-api-key": make_key("viewer", (A,))}
    assert client.get(RULES, headers=viewer).status_code == 200
    assert client.post(f"{RULES}/test", json={"old": {}, "new": {}}, headers=viewer).json() == {"fired": []}
    assert client.put(RULES, json=VIP, headers=viewer).status_code == 403
    other_admin = {"x-api-key": make_key("admin", (B,))}
    assert client.put(RULES, json=VIP, headers=other_admin).status_code == 403
    assert client.put(RULES, json=VIP, headers={"x-api-key": make_key("admin", (A,))}).status_code == 200


def test_deleting_an_agent_deletes_its_rules(api: Any) -> None:
    api("PUT", RULES, json=VIP)
    api("DELETE", f"/v2/agents/{A}", 204)
    assert api("GET", RULES, 404)["code"] == "agent_not_found"
