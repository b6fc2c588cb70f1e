"""The PATCH by a key this API process knows: the update script runs the gate itself (one round trip).
Every answer must be the one the two-round-trip path gives, in the same order (401 -> 429 -> 403 -> 400),
and a refused request must write nothing."""

from __future__ import annotations

from typing import Any

import redis
from starlette.testclient import TestClient

from agent_sessions.access.auth import digest
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.web.app import create_app
from tests.support import stream
from tests.support.api import SEED_AGENT, SEED_SESSION, MakeKey, error
from tests.support.keys import KEYS

URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
SESSION_KEY = KEYS.session(SEED_AGENT, SEED_SESSION)


def known(client: TestClient, key: str) -> dict[str, str]:
    """Make the key known to the app (any admitted request does) and return its headers."""
    headers = {"x-api-key": key}
    assert client.get(URL, headers=headers).status_code == 200
    assert client.app.state.gate.known(digest(key)) is not None  # type: ignore[attr-defined]
    return headers


def unchanged(sync_redis: redis.Redis) -> tuple[Any, ...]:
    return sync_redis.hget(SESSION_KEY, "version"), stream.outbox_length(sync_redis)


def test_a_known_key_patches_in_one_script(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    headers = known(client, make_key("editor"))
    response = client.patch(URL, json={"description": "one trip"}, headers=headers)
    assert response.status_code == 200 and response.json()["description"] == "one trip"
    assert response.headers["ratelimit-policy"] == '"default";q=100;w=2'
    assert response.headers["etag"] == f'"{response.json()["version"]}"'


def test_revoked_after_it_became_known_401_and_nothing_written(
    client: TestClient, make_key: MakeKey, seeded: Any, sync_redis: redis.Redis
) -> None:
    secret = make_key("editor")
    headers = known(client, secret)
    before = unchanged(sync_redis)
    Keyring(sync_redis, KEYS).revoke(secret)
    body = error(client.patch(URL, json={"description": "x"}, headers=headers), 401, "unauthorized")
    assert body["messages"] == ["API key revoked"]
    assert client.app.state.gate.known(digest(secret)) is None  # type: ignore[attr-defined]
    # A bad body still gets the 401 first.
    error(client.patch(URL, json={"bad": 1}, headers=headers), 401, "unauthorized")
    assert unchanged(sync_redis) == before


def test_rate_limited_429_with_headers_and_nothing_written(
    client: TestClient, make_key: MakeKey, seeded: Any, sync_redis: redis.Redis
) -> None:
    headers = known(client, make_key("editor", rate=1.0, burst=2))
    assert client.patch(URL, json={"description": "second token"}, headers=headers).status_code == 200
    before = unchanged(sync_redis)
    response = client.patch(URL, json={"description": "no token"}, headers=headers)
    error(response, 429, "rate_limit_exceeded")
    assert response.headers["retry-after"] == "1"
    assert response.headers["ratelimit"] == '"default";r=0;t=1'
    error(client.patch(URL, json={"bad": 1}, headers=headers), 429, "rate_limit_exceeded")  # before the 400
    assert unchanged(sync_redis) == before


def make_headers(secret: str) -> dict[str, str]:
    return {"x-api-key": secret}


def test_a_throttled_address_never_locks_out_a_valid_key(
    redis_url: str, make_key: MakeKey, sync_redis: redis.Redis, seeded: Any
) -> None:
    settings = Settings(redis_url=redis_url, auth_failure_rate=0.01, auth_failure_burst=2)
    with TestClient(create_app(settings)) as client:
        headers = known(client, make_key("editor"))
        for i in range(2):
            error(client.get(URL, headers={"x-api-key": f"ask_{i:032d}"}), 401, "unauthorized")
        error(client.get(URL, headers={"x-api-key": "ask_" + "9" * 32}), 429, "rate_limit_exceeded")
        # The address is throttled, but for invalid keys only: this key's PATCH goes through.
        assert client.patch(URL, json={"description": "x"}, headers=headers).status_code == 200
        assert client.get(URL, headers=make_headers(make_key("viewer"))).status_code == 200
    assert sync_redis.hget(KEYS.session(SEED_AGENT, SEED_SESSION), "description") == "x"


def test_bad_request_by_a_known_key_is_400_and_takes_a_token(
    client: TestClient, make_key: MakeKey, seeded: Any, sync_redis: redis.Redis
) -> None:
    headers = known(client, make_key("editor", rate=1.0, burst=5))
    before = unchanged(sync_redis)
    response = client.patch(URL, json={"enabled": "true"}, headers=headers)
    error(response, 400, "invalid_request")
    assert response.headers["ratelimit"] == '"default";r=3;t=1'  # the GET and this request
    assert unchanged(sync_redis) == before


def test_role_and_scope_still_403_for_a_known_key(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    viewer = known(client, make_key("viewer"))
    error(client.patch(URL, json={"description": "x"}, headers=viewer), 403, "forbidden")
    scoped = known(client, make_key("editor", agents=(SEED_AGENT,)))
    other = "/v2/agents/agt_other/sessions/ase_1"
    error(client.patch(other, json={"description": "x"}, headers=scoped), 403, "forbidden")
    error(client.patch(other, json={"bad": 1}, headers=scoped), 403, "forbidden")  # before the 400


def test_missing_session_404_carries_the_quota(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    headers = known(client, make_key("editor"))
    response = client.patch(f"/v2/agents/{SEED_AGENT}/sessions/ase_missing", json={"description": "x"}, headers=headers)
    error(response, 404, "session_not_found")
    assert response.headers["ratelimit"].startswith('"default";r=')


def test_merge_patch_by_a_known_key(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    headers = known(client, make_key("editor"))
    response = client.patch(
        URL,
        content=b'{"metadata": {"priority": null, "escalated": true}}',
        headers={**headers, "content-type": "application/merge-patch+json"},
    )
    assert response.status_code == 200
    metadata = response.json()["metadata"]
    assert "priority" not in metadata and metadata["escalated"] is True and metadata["channel"] == "web_chat"
