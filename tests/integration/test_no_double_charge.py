"""A connection cut after Redis ran a script must not make the client run it again.

redis-py retries failed commands by default; our client does not (``redis.client``). If that policy
regressed, the cut request below would charge the bucket (or bump the version) more than once.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role, digest
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from tests.support.api import error
from tests.support.keys import KEYS
from tests.support.proxy import CuttingProxy

URL = "/v2/agents/agt_a/sessions/ase_1"


@pytest.fixture
def through_proxy(redis_server: RedisServer, redis_url: str) -> Iterator[tuple[TestClient, CuttingProxy, str]]:
    direct = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(direct, KEYS).create(Role.ADMIN, rate=0.001, burst=100)
    with (
        CuttingProxy(redis_server.port) as proxy,
        TestClient(create_app(Settings(redis_url=proxy.url))) as client,
    ):
        headers = {"x-api-key": secret}
        assert client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=headers).status_code == 201
        assert client.post("/v2/agents/agt_a/sessions", json={"key": "ase_1"}, headers=headers).status_code == 201
        yield client, proxy, secret
    direct.close()


def tokens(sync_redis: redis.Redis, secret: str) -> int:
    bucket = sync_redis.get(KEYS.key_bucket(digest(secret)))  # "<tokens> <ms>" (see _gate.lua)
    return int(float(bucket.split()[0])) if bucket else 0


def test_gate_reply_lost_charges_the_bucket_once(
    through_proxy: tuple[TestClient, CuttingProxy, str], sync_redis: redis.Redis
) -> None:
    client, proxy, secret = through_proxy
    before = tokens(sync_redis, secret)
    proxy.cut_after(0)
    error(client.get(URL, headers={"x-api-key": secret}), 503, "service_unavailable")
    proxy.cut_after(None)
    assert tokens(sync_redis, secret) == before - 1


def test_update_reply_lost_applies_the_update_once(
    through_proxy: tuple[TestClient, CuttingProxy, str], sync_redis: redis.Redis
) -> None:
    """A key this process knows: the gate runs inside the update script, one round trip, lost."""
    client, proxy, secret = through_proxy
    headers = {"x-api-key": secret}
    assert client.patch(URL, json={"description": "warm"}, headers=headers).status_code == 200  # scripts loaded
    before = tokens(sync_redis, secret)
    proxy.cut_after(0)  # the reply of the update script (which ran the gate first) is lost
    error(client.patch(URL, json={"description": "once"}, headers=headers), 503, "service_unavailable")
    proxy.cut_after(None)
    assert sync_redis.hget(KEYS.session("agt_a", "ase_1"), "version") == "3"
    assert sync_redis.hget(KEYS.session("agt_a", "ase_1"), "description") == "once"
    assert tokens(sync_redis, secret) == before - 1


def test_update_reply_lost_after_a_separate_gate_applies_the_update_once(
    through_proxy: tuple[TestClient, CuttingProxy, str], sync_redis: redis.Redis
) -> None:
    """A key this process has not seen: the gate and the update are two round trips; the second is lost."""
    client, proxy, secret = through_proxy
    assert client.patch(URL, json={"description": "warm"}, headers={"x-api-key": secret}).status_code == 200
    _, fresh = Keyring(sync_redis, KEYS).create(Role.EDITOR, rate=0.001, burst=100)
    headers = {"x-api-key": fresh}
    proxy.cut_after(1)  # the gate's reply passes, the update script's reply is lost
    error(client.patch(URL, json={"description": "once"}, headers=headers), 503, "service_unavailable")
    proxy.cut_after(None)
    assert sync_redis.hget(KEYS.session("agt_a", "ase_1"), "version") == "3"
    assert sync_redis.hget(KEYS.session("agt_a", "ase_1"), "description") == "once"
    assert tokens(sync_redis, fresh) == 99
