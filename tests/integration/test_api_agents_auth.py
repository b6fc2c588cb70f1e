"""Agents over HTTP, API keys, roles and agent scopes, in the contract's check order."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.sessions.purge import Purger
from tests.support.api import SEED_AGENT, SEED_SESSION, MakeKey, error
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"


def test_agent_crud(client: TestClient, admin: dict[str, str]) -> None:
    created = client.post("/v2/agents", json={"name": "Support", "metadata": {"team": "billing"}}, headers=admin)
    assert created.status_code == 201
    agent = created.json()
    assert agent["key"].startswith("agt_") and agent["enabled"] is True and agent["metadata"] == {"team": "billing"}
    url = f"/v2/agents/{agent['key']}"
    assert client.get(url, headers=admin).json() == agent
    error(
        client.post("/v2/agents", json={"key": agent["key"], "name": "dup"}, headers=admin),
        409,
        "agent_already_exists",
    )
    updated = client.patch(url, json={"description": "d", "enabled": False}, headers=admin).json()
    assert updated["description"] == "d" and updated["enabled"] is False and updated["name"] == "Support"
    assert client.patch(url, json={}, headers=admin).json() == updated
    error(client.patch(url, json={"key": "agt_other"}, headers=admin), 400, "invalid_request")
    error(client.post("/v2/agents", json={"description": "no name"}, headers=admin), 400, "invalid_request")
    listed = client.get("/v2/agents", headers=admin).json()
    assert [a["key"] for a in listed["agents"]] == [agent["key"]]
    assert client.delete(url, headers=admin).status_code == 204
    error(client.get(url, headers=admin), 404, "agent_not_found")
    error(client.delete(url, headers=admin), 404, "agent_not_found")


def test_deleting_an_agent_deletes_its_sessions(
    client: TestClient, admin: dict[str, str], seeded: Any, sync_redis: redis.Redis
) -> None:
    assert client.delete(f"/v2/agents/{SEED_AGENT}", headers=admin).status_code == 204
    error(client.get(URL, headers=admin), 404, "agent_not_found")  # at once, before the purge
    error(client.patch(URL, json={"description": "x"}, headers=admin), 404, "agent_not_found")
    error(client.get(f"/v2/agents/{SEED_AGENT}/sessions", headers=admin), 404, "agent_not_found")
    while Purger(sync_redis, KEYS).step():
        pass
    assert sync_redis.keys("as:session*") == [] and sync_redis.keys("as:history*") == []


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"x-api-key": "ask_" + "A" * 32},
        {"x-api-key": "not-a-key"},
        {"authorization": "Basic abc"},
        {"authorization": "Bearer "},
        {"authorization": "Bearer ask_" + "B" * 32},
    ],
)
def test_missing_unknown_or_malformed_keys_are_401(client: TestClient, seeded: Any, headers: dict[str, str]) -> None:
    response = client.patch(URL, json={"bad": "body"}, headers=headers)
    error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_bearer_header_is_accepted(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    key = make_key("editor")
    response = client.patch(URL, json={"enabled": False}, headers={"authorization": f"Bearer {key}"})
    assert response.status_code == 200


def test_roles(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    viewer, editor = {"x-api-key": make_key("viewer")}, {"x-api-key": make_key("editor")}
    assert client.get(URL, headers=viewer).status_code == 200
    assert client.get(f"/v2/agents/{SEED_AGENT}/sessions", headers=viewer).status_code == 200
    error(client.patch(URL, json={"enabled": False}, headers=viewer), 403, "forbidden")
    error(client.post(f"/v2/agents/{SEED_AGENT}/sessions", json={}, headers=viewer), 403, "forbidden")
    error(client.delete(URL, headers=viewer), 403, "forbidden")
    assert client.patch(URL, json={"enabled": False}, headers=editor).status_code == 200
    refused = error(client.post("/v2/agents", json={"name": "x"}, headers=editor), 403, "forbidden")
    assert refused["messages"] == ["an editor key cannot do this; it needs the admin role"]
    error(client.patch(f"/v2/agents/{SEED_AGENT}", json={"name": "x"}, headers=editor), 403, "forbidden")
    error(client.delete(f"/v2/agents/{SEED_AGENT}", headers=editor), 403, "forbidden")


def test_forbidden_comes_before_body_validation(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    viewer = {"x-api-key": make_key("viewer")}
    error(
        client.patch(URL, content=b"not json", headers={**viewer, "content-type": "text/plain"}),
        403,
        "forbidden",
    )


def test_scoped_key_gets_403_for_other_agents_whether_or_not_they_exist(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, seeded: Any
) -> None:
    client.post("/v2/agents", json={"key": "agt_other", "name": "other"}, headers=admin)
    scoped = {"x-api-key": make_key("editor", (SEED_AGENT,))}
    assert client.patch(URL, json={"enabled": False}, headers=scoped).status_code == 200
    for agent in ("agt_other", "agt_does_not_exist", "bad key"):
        error(client.get(f"/v2/agents/{agent}/sessions/{SEED_SESSION}", headers=scoped), 403, "forbidden")
        error(
            client.patch(f"/v2/agents/{agent}/sessions/{SEED_SESSION}", json={"x": 1}, headers=scoped),
            403,
            "forbidden",
        )


def test_scoped_admin_sees_only_its_agents_and_cannot_create_new_ones(
    client: TestClient, admin: dict[str, str], make_key: MakeKey, seeded: Any
) -> None:
    client.post("/v2/agents", json={"key": "agt_other", "name": "other"}, headers=admin)
    scoped = {"x-api-key": make_key("admin", (SEED_AGENT, "agt_gone"))}
    listed = client.get("/v2/agents", headers=scoped).json()
    assert [a["key"] for a in listed["agents"]] == [SEED_AGENT] and listed["metadata"]["total_count"] == 1
    error(client.post("/v2/agents", json={"name": "new"}, headers=scoped), 403, "forbidden")
    assert client.patch(f"/v2/agents/{SEED_AGENT}", json={"name": "mine"}, headers=scoped).status_code == 200


def test_revoked_key_is_refused_at_once(client: TestClient, sync_redis: redis.Redis, seeded: Any) -> None:
    keyring = Keyring(sync_redis, KEYS)
    by_id, secret1 = keyring.create(Role.EDITOR)
    by_secret, secret2 = keyring.create(Role.EDITOR)
    assert client.get(URL, headers={"x-api-key": secret1}).status_code == 200
    assert keyring.revoke(by_id.id) is not None
    assert keyring.revoke(secret2) is not None
    for secret in (secret1, secret2):
        body = error(client.get(URL, headers={"x-api-key": secret}), 401, "unauthorized")
        assert "revoked" in body["messages"][0]
    assert keyring.revoke("kid_000000000000") is None
    revoked = {k.id for k in keyring.list() if k.revoked_at}
    assert revoked == {by_id.id, by_secret.id}


def test_only_digests_are_stored(sync_redis: redis.Redis) -> None:
    key, secret = Keyring(sync_redis, KEYS).create(Role.VIEWER, name="frontend")
    dump = str({k: sync_redis.hgetall(k) if sync_redis.type(k) == "hash" else None for k in sync_redis.keys("*")})
    assert secret not in dump and secret[4:] not in dump
    assert key.id in dump
