"""How many Redis round trips each request makes, counted on the wire (a proxy in front of Redis).

The PATCH's budget: one for authentication and rate limiting together (gate.lua), one for the update.
"""

from __future__ import annotations

import redis
from starlette.testclient import TestClient

from agent_sessions.auth import Keyring, Role
from agent_sessions.config import Settings
from agent_sessions.redis_server import RedisServer
from agent_sessions.web.app import create_app
from tests.proxy import CuttingProxy

URL = "/v2/agents/agt_a/sessions/ase_1"


def test_patch_makes_two_round_trips(redis_server: RedisServer, sync_redis: redis.Redis) -> None:
    _, secret = Keyring(sync_redis).create(Role.ADMIN)
    headers = {"x-api-key": secret}
    with (
        CuttingProxy(redis_server.port) as proxy,
        TestClient(create_app(Settings(redis_url=proxy.url))) as client,
    ):
        client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=headers)
        client.post("/v2/agents/agt_a/sessions", json={"key": "ase_1"}, headers=headers)
        client.patch(URL, json={"description": "warm up: scripts loaded, connection open"}, headers=headers)
        counts = []
        for body in (
            {"description": "changed"},
            {"description": "changed"},
            {"metadata": {"priority": "urgent"}},
        ):
            before = proxy.requests
            assert client.patch(URL, json=body, headers=headers).status_code == 200
            counts.append(proxy.requests - before)
        before = proxy.requests
        client.get(URL, headers=headers)
        counts.append(proxy.requests - before)
    assert counts == [2, 2, 2, 2]  # change, no-op, change, read
