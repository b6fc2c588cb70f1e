"""Token buckets on real Redis: the gate script directly, then the HTTP behaviour."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role, digest
from agent_sessions.access.ratelimit import Gate, Limits, retry_after
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.errors import RateLimited, Unauthorized
from agent_sessions.redis.client import async_client
from agent_sessions.web.app import create_app
from tests.support.api import SEED_AGENT, SEED_SESSION, MakeKey, error
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

LIMITS = Limits(rate=50, burst=100, failure_rate=1, failure_burst=3)
URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"


@pytest.fixture
async def gate(redis_url: str) -> AsyncIterator[Gate]:
    client = async_client(redis_url, 2.0)
    yield Gate(client, KEYS, LIMITS)
    await client.aclose()


def new_key(sync_redis: redis.Redis, **kwargs: Any) -> str:
    return Keyring(sync_redis, KEYS).create(Role.EDITOR, **kwargs)[1]


@pytest.mark.anyio
async def test_rate_1_burst_5_gives_exactly_5_then_429_until_a_token_refills(
    gate: Gate, sync_redis: redis.Redis
) -> None:
    secret = new_key(sync_redis, rate=1.0, burst=5)
    results = [await gate.admit(digest(secret), "10.0.0.1") for _ in range(7)]
    assert [allowed for _, _, allowed in results] == [True] * 5 + [False] * 2
    assert [quota.remaining for _, quota, _ in results] == [4, 3, 2, 1, 0, 0, 0]
    _, last, _ = results[-1]
    assert last.rate == 1.0 and last.burst == 5 and 0 < last.next_token_ms <= 1000
    assert retry_after(last.next_token_ms) == 1


@pytest.mark.anyio
async def test_tokens_refill_at_the_rate(gate: Gate, sync_redis: redis.Redis) -> None:
    secret = new_key(sync_redis, rate=20.0, burst=2)
    assert [(await gate.admit(digest(secret), "a"))[2] for _ in range(3)] == [True, True, False]
    await asyncio.sleep(0.06)  # > 1/20 s: one token back, not two
    assert [(await gate.admit(digest(secret), "a"))[2] for _ in range(2)] == [True, False]


@pytest.mark.anyio
async def test_defaults_apply_to_keys_without_their_own(gate: Gate, sync_redis: redis.Redis) -> None:
    _, quota, _ = await gate.admit(digest(new_key(sync_redis)), "a")
    assert (quota.rate, quota.burst, quota.remaining) == (50.0, 100, 99)
    assert dict(quota.headers()) == {
        "RateLimit-Policy": '"default";q=100;w=2',
        "RateLimit": '"default";r=99;t=1',
    }


@pytest.mark.anyio
async def test_bucket_key_expires_once_full(gate: Gate, sync_redis: redis.Redis) -> None:
    secret = new_key(sync_redis, rate=10.0, burst=3)
    bucket = KEYS.key_bucket(digest(secret))
    await gate.admit(digest(secret), "a")
    await gate.admit(digest(secret), "a")
    assert 0 < sync_redis.pttl(bucket) <= 200  # two tokens short at 10/s
    await asyncio.sleep(0.25)
    assert not sync_redis.exists(bucket)
    _, quota, _ = await gate.admit(digest(secret), "a")
    assert quota.remaining == 2


@pytest.mark.anyio
async def test_a_bucket_is_one_string_with_its_expiry_and_an_older_hash_bucket_reads_as_full(
    gate: Gate, sync_redis: redis.Redis
) -> None:
    secret = new_key(sync_redis, rate=10.0, burst=3)
    bucket = KEYS.key_bucket(digest(secret))
    sync_redis.hset(bucket, mapping={"tokens": "0.000000", "ts": "1.000"})  # as 0.2.0 kept it: empty
    sync_redis.pexpire(bucket, 300)
    _, quota, admitted = await gate.admit(digest(secret), "a")
    assert admitted and quota.remaining == 2  # read as full (it would refill within its expiry anyway)
    written = sync_redis.get(bucket)
    assert written is not None
    tokens, at = written.split()  # "<tokens> <ms>", written with its expiry in one SET
    assert float(tokens) == pytest.approx(2, abs=0.01) and float(at) > 0
    assert 0 < sync_redis.pttl(bucket) <= 100  # one token short at 10/s
    _, quota, _ = await gate.admit(digest(secret), "a")
    assert quota.remaining == 1


@pytest.mark.anyio
async def test_failed_authentications_throttle_the_address_for_invalid_keys_only(
    gate: Gate, sync_redis: redis.Redis
) -> None:
    good = new_key(sync_redis)
    revoked = new_key(sync_redis)
    Keyring(sync_redis, KEYS).revoke(revoked)
    for secret in ("ask_" + "x" * 32, revoked, "ask_" + "y" * 32):
        with pytest.raises(Unauthorized):
            await gate.admit(digest(secret), "6.6.6.6")
    # Throttled: the next invalid key from that address is refused with 429...
    with pytest.raises(RateLimited) as info:
        await gate.admit(digest("ask_" + "z" * 32), "6.6.6.6")
    assert info.value.retry_after == 1 and info.value.reason == "address"
    # ...but a valid key from the same address is admitted and charged to its own bucket only.
    assert (await gate.admit(digest(good), "6.6.6.6"))[2]
    assert sync_redis.exists(KEYS.key_bucket(digest(good)))
    # Other addresses are not affected, and successes cost the address nothing.
    assert (await gate.admit(digest(good), "7.7.7.7"))[2]
    assert not sync_redis.exists("as:rl:addr:7.7.7.7")


# -- over HTTP ----------------------------------------------------------------------------------------


@pytest.fixture
def limited(make_key: MakeKey, client: TestClient, seeded: Any) -> dict[str, str]:
    return {"x-api-key": make_key("viewer", rate=1.0, burst=2)}


def test_429_body_and_retry_after(client: TestClient, limited: dict[str, str]) -> None:
    assert client.get(URL, headers=limited).status_code == 200
    assert client.get(URL, headers=limited).status_code == 200
    response = client.get(URL, headers=limited)
    body = error(response, 429, "rate_limit_exceeded")
    assert body["messages"] == ["rate limit exceeded"]
    assert response.headers["retry-after"] == "1"
    assert response.headers["ratelimit"] == '"default";r=0;t=1'
    assert response.headers["ratelimit-policy"] == '"default";q=2;w=2'


def test_limit_is_checked_before_role_and_body(client: TestClient, limited: dict[str, str]) -> None:
    client.get(URL, headers=limited)
    client.get(URL, headers=limited)
    # A viewer may not PATCH (403) and the body is invalid (400/415), yet 429 comes first.
    error(
        client.patch(URL, content=b"junk", headers={**limited, "content-type": "text/plain"}),
        429,
        "rate_limit_exceeded",
    )


def test_every_authenticated_response_has_ratelimit_headers(client: TestClient, make_key: MakeKey, seeded: Any) -> None:
    admin, viewer = {"x-api-key": make_key("admin")}, {"x-api-key": make_key("viewer")}
    responses = [
        client.get(URL, headers=admin),
        client.patch(URL, json={"bad": 1}, headers=admin),
        client.get(f"/v2/agents/{SEED_AGENT}/sessions/ase_missing", headers=admin),
        client.patch(URL, json={}, headers=viewer),
    ]
    assert [r.status_code for r in responses] == [200, 400, 404, 403]
    for r in responses:
        assert r.headers["ratelimit-policy"] == '"default";q=100;w=2'
        assert r.headers["ratelimit"].startswith('"default";r=')
    assert "ratelimit" not in client.get("/healthz").headers
    assert "ratelimit" not in client.get(URL).headers  # 401: no key, no quota


def test_key_guessing_is_throttled_per_address(redis_url: str, make_key: MakeKey) -> None:
    settings = Settings(redis_url=redis_url, auth_failure_rate=0.5, auth_failure_burst=3)
    good = {"x-api-key": make_key("admin")}
    with TestClient(create_app(settings)) as client:
        for i in range(3):
            error(client.get("/v2/agents", headers={"x-api-key": f"ask_{i:032d}"}), 401, "unauthorized")
        response = client.get("/v2/agents", headers={"x-api-key": "ask_" + "9" * 32})
        error(response, 429, "rate_limit_exceeded")
        assert response.headers["retry-after"] == "2"
        assert client.get("/v2/agents", headers=good).status_code == 200  # never locked out by others
