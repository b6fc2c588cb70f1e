"""How many Redis round trips each request makes, counted on the wire (a proxy in front of Redis).

The PATCH's budget: one. The update script runs the gate (authentication and rate limiting) first when
this API process already knows the key; a key's first request here costs one more (gate.lua alone).
"""

from __future__ import annotations

from typing import Any

import redis
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from tests.support.keys import KEYS
from tests.support.proxy import CuttingProxy

URL = "/v2/agents/agt_a/sessions/ase_1"


def test_patch_makes_one_round_trip(redis_server: RedisServer, sync_redis: redis.Redis) -> None:
    _, secret = Keyring(sync_redis, KEYS).create(Role.ADMIN)
    headers = {"x-api-key": secret}
    with (
        CuttingProxy(redis_server.port) as proxy,
        TestClient(create_app(Settings(redis_url=proxy.url))) as client,
    ):
        client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=headers)
        client.post("/v2/agents/agt_a/sessions", json={"key": "ase_1"}, headers=headers)
        client.patch(URL, json={"description": "warm up: scripts loaded, connection open"}, headers=headers)
        client.get(URL, headers=headers)  # its script loaded too
        counts = []
        for body in (
            {"description": "changed"},
            {"description": "changed"},
            {"metadata": {"priority": "urgent"}},
        ):
            before = proxy.requests
            assert client.patch(URL, json=body, headers=headers).status_code == 200
            counts.append(proxy.requests - before)

        def round_trips(method: str, **kwargs: Any) -> int:
            before = proxy.requests
            client.request(method, URL, **kwargs)
            return proxy.requests - before

        _, unseen = Keyring(sync_redis, KEYS).create(Role.EDITOR)
        first_of_a_key = round_trips("PATCH", json={"description": "new key"}, headers={"x-api-key": unseen})
        merge = round_trips(
            "PATCH",
            content=b'{"metadata": {"channel": "chat"}}',
            headers={**headers, "content-type": "application/merge-patch+json"},
        )
        read = round_trips("GET", headers=headers)
    assert counts == [1, 1, 1]  # change, no-op, change
    assert first_of_a_key == 2  # the gate alone, then the update
    assert merge == 3  # gate, read, compare-and-set write
    assert read == 2  # gate, read
