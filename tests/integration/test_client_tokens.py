"""Client tokens (POST /v2/client_tokens): what a browser page holds instead of an API key. Minted by a
key for one agent (and optionally one session), never more than the key; verified without Redis;
refused once expired, forged or when the minting key is revoked; charged to the minting key's rate."""

from __future__ import annotations

import time
from typing import Any

import jwt
import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.web.app import create_app
from tests.support.api import MakeKey, error
from tests.support.keys import KEYS

SECRET = "s" * 40
A, B = "agt_a", "agt_b"
SESSION = f"/v2/agents/{A}/sessions/ase_1"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, client_tokens=True, client_token_secret=SECRET)


@pytest.fixture
def made(client: TestClient, admin: dict[str, str]) -> None:
    for agent in (A, B):
        assert client.post("/v2/agents", json={"key": agent, "name": agent}, headers=admin).status_code == 201
        for session in ("ase_1", "ase_2"):
            body = {"key": session, "metadata": {"priority": "low"}}
            assert client.post(f"/v2/agents/{agent}/sessions", json=body, headers=admin).status_code == 201


def mint(client: TestClient, key: dict[str, str], status: int = 201, **body: Any) -> dict[str, Any]:
    response = client.post("/v2/client_tokens", json={"agent_key": A, **body}, headers=key)
    assert response.status_code == status, response.text
    answer: dict[str, Any] = response.json()
    return answer


def stored(conn: redis.Redis) -> set[str]:
    """Every key but the rate limit's buckets: the minting key's comes and goes with use and time (it
    expires once full again; on a slow machine it did between two requests here, and the mint made it
    anew), whatever a token holds."""
    buckets = f"{KEYS.prefix}rl:"
    return {key for key in conn.scan_iter(count=1000) if not key.startswith(buckets)}


def bearer(token: dict[str, Any] | str) -> dict[str, str]:
    return {"authorization": f"Bearer {token if isinstance(token, str) else token['token']}"}


def test_a_session_token_reads_and_changes_its_session_only(
    client: TestClient, admin: dict[str, str], made: None, sync_redis: redis.Redis
) -> None:
    before = stored(sync_redis)
    token = mint(client, admin, session_key="ase_1", role="editor", ttl_seconds=120)
    assert token["token"].startswith("act_") and token["role"] == "editor" and token["session_key"] == "ase_1"
    assert stored(sync_redis) == before  # a token holds nothing in Redis
    patched = client.patch(SESSION, json={"description": "from a page"}, headers=bearer(token))
    assert patched.status_code == 200 and patched.headers["etag"] == '"2"', patched.text
    assert client.get(SESSION, headers=bearer(token)).json()["description"] == "from a page"
    assert client.get(f"{SESSION}/history", headers=bearer(token)).json()["history"][0]["version"] == 2
    for method, path in [
        ("GET", f"/v2/agents/{A}/sessions/ase_2"),  # another session
        ("PATCH", f"/v2/agents/{A}/sessions/ase_2"),
        ("GET", f"/v2/agents/{B}/sessions/ase_1"),  # another agent
        ("GET", f"/v2/agents/{A}/sessions"),  # the agent's list: an agent token's, not a session's
        ("DELETE", SESSION),
        ("GET", "/v2/agents"),  # admin resources, keys, tokens, endpoints, rules
        ("GET", "/v2/webhook_endpoints"),
        ("GET", f"/v2/agents/{A}/escalation_rules"),
        ("POST", "/v2/client_tokens"),
        ("GET", "/v2/events?session_key=ase_2"),
    ]:
        body = {"description": "x"} if method == "PATCH" else {"agent_key": A} if method == "POST" else None
        error(client.request(method, path, json=body, headers=bearer(token)), 403, "forbidden")
    events = client.get("/v2/events", params={"access_token": token["token"]}).json()["events"]
    assert {e["session_key"] for e in events} <= {"ase_1"}  # its session's events only


def test_an_agent_token_acts_on_its_agent_within_its_role(
    client: TestClient, admin: dict[str, str], made: None
) -> None:
    viewer = mint(client, admin)
    assert viewer["role"] == "viewer" and viewer["session_key"] is None
    assert len(client.get(f"/v2/agents/{A}/sessions", headers=bearer(viewer)).json()["sessions"]) == 2
    assert client.get(f"/v2/agents/{A}/report", headers=bearer(viewer)).status_code == 200
    error(client.patch(SESSION, json={"enabled": False}, headers=bearer(viewer)), 403, "forbidden")
    error(client.get(f"/v2/agents/{B}/sessions", headers=bearer(viewer)), 403, "forbidden")
    editor = mint(client, admin, role="editor")
    assert (
        client.patch(f"/v2/agents/{A}/sessions/ase_2", json={"enabled": False}, headers=bearer(editor)).status_code
        == 200
    )


def test_a_token_never_exceeds_its_minter(client: TestClient, make_key: MakeKey, made: None) -> None:
    viewer = {"x-api-key": make_key("viewer")}
    refused = error(mint_response(client, viewer, role="editor"), 403, "forbidden")
    assert refused["messages"] == ["a viewer key cannot mint an editor token"]
    scoped = {"x-api-key": make_key("editor", agents=(B,))}
    error(mint_response(client, scoped), 403, "forbidden")  # agent A is not the key's
    error(mint_response(client, scoped, agent_key="agt_none"), 403, "forbidden")  # no existence oracle either
    admin = {"x-api-key": make_key("admin")}
    error(mint_response(client, admin, role="admin"), 400, "invalid_request")  # never an admin token
    error(mint_response(client, admin, ttl_seconds=59), 400, "invalid_request")
    error(mint_response(client, admin, ttl_seconds=3601), 400, "invalid_request")
    error(mint_response(client, admin, agent_key="agt_none"), 404, "agent_not_found")
    token = mint(client, {"x-api-key": make_key("editor", agents=(A,))}, role="editor")
    error(mint_response(client, bearer(token)), 403, "forbidden")  # a token mints nothing


def mint_response(client: TestClient, key: dict[str, str], **body: Any) -> Any:
    return client.post("/v2/client_tokens", json={"agent_key": A, **body}, headers=key)


def test_expired_forged_and_revoked_tokens_are_401(
    client: TestClient, make_key: MakeKey, made: None, sync_redis: redis.Redis
) -> None:
    secret = make_key("editor")
    token = mint(client, {"x-api-key": secret}, session_key="ase_1")
    claims = jwt.decode(token["token"].removeprefix("act_"), SECRET, algorithms=["HS256"])
    expired = "act_" + jwt.encode({**claims, "exp": int(time.time()) - 1}, SECRET, algorithm="HS256")
    assert error(client.get(SESSION, headers=bearer(expired)), 401, "token_expired")
    forged = "act_" + jwt.encode({**claims, "rol": "editor"}, "another secret of forty characters......", "HS256")
    error(client.get(SESSION, headers=bearer(forged)), 401, "unauthorized")
    error(client.get(SESSION, headers=bearer("act_not.a.jwt")), 401, "unauthorized")
    assert client.get(SESSION, headers=bearer(token)).status_code == 200
    Keyring(sync_redis, KEYS).revoke(secret)
    error(client.get(SESSION, headers=bearer(token)), 401, "unauthorized")  # at once, by every API process
    error(client.patch(SESSION, json={"description": "x"}, headers=bearer(token)), 401, "unauthorized")


def test_only_the_event_log_takes_a_token_in_its_url_and_never_an_api_key(
    client: TestClient, admin: dict[str, str], made: None
) -> None:
    token = mint(client, admin, session_key="ase_1")["token"]
    assert client.get("/v2/events", params={"access_token": token}).status_code == 200
    error(client.get(SESSION, params={"access_token": token}), 401, "unauthorized")
    error(client.get("/v2/events", params={"access_token": admin["x-api-key"]}), 401, "unauthorized")
    error(client.get(f"/v2/agents/{A}", params={"access_token": admin["x-api-key"]}), 401, "unauthorized")


def test_a_token_is_charged_to_its_minting_key(client: TestClient, make_key: MakeKey, made: None) -> None:
    key = {"x-api-key": make_key("editor", rate=0.001, burst=4)}
    token = mint(client, key, session_key="ase_1", role="editor")  # 1
    assert client.get(SESSION, headers=bearer(token)).status_code == 200  # 2
    assert client.patch(SESSION, json={"description": "y"}, headers=bearer(token)).status_code == 200  # 3
    assert client.get(SESSION, headers=key).status_code == 200  # 4: the bucket is the key's
    error(client.get(SESSION, headers=bearer(token)), 429, "rate_limit_exceeded")
    error(client.get(SESSION, headers=key), 429, "rate_limit_exceeded")


def test_tokens_are_off_unless_configured(redis_url: str, admin: dict[str, str]) -> None:
    with TestClient(create_app(Settings(redis_url=redis_url))) as off:
        assert off.post("/v2/agents", json={"key": A, "name": "a"}, headers=admin).status_code == 201
        error(mint_response(off, admin), 403, "forbidden")
        error(off.get(f"/v2/agents/{A}", headers=bearer("act_x.y.z")), 401, "unauthorized")
    with pytest.raises(ConfigError, match="CLIENT_TOKEN_SECRET"):
        Settings.from_env({"REDIS_URL": redis_url, "CLIENT_TOKENS": "true"})
