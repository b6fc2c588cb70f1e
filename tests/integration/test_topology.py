"""What each process checks about its Redis when it starts: on a Redis Cluster, what cannot work there
is refused with a reason; a REDIS_MIN_REPLICA_ACKS the primary's replicas cannot meet is logged
(tests/integration/test_replica_acks.py)."""

from __future__ import annotations

import subprocess

import pytest
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from tests.support.processes import command, env

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster


def test_on_a_cluster_the_api_starts_with_replica_acks_and_dramatiqs_redis_broker_is_refused(
    redis_cluster: list[RedisServer],
) -> None:
    """The cluster client is chosen from INFO; the API starts and serves, REDIS_MIN_REPLICA_ACKS too
    (tests/integration/test_cluster_failover.py shows what it does there); Dramatiq's Redis broker,
    which a cluster cannot serve, is refused by the worker with the reason."""
    url = redis_cluster[1].url
    for acks in (0, 1):
        with TestClient(create_app(Settings(redis_url=url, redis_min_replica_acks=acks))) as client:
            assert client.get("/readyz").status_code == 200
    worker = subprocess.run(
        [command(), "worker", "--processes", "1"],
        capture_output=True,
        text=True,
        env=env(REDIS_URL=url),  # BROKER_URL: REDIS_URL by default
        timeout=60,
    )
    assert worker.returncode == 2 and "Dramatiq's Redis broker cannot use" in worker.stderr, worker.stderr


def test_a_standalone_redis_is_accepted_and_an_unreachable_one_is_checked_later(redis_url: str) -> None:
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        assert client.get("/healthz").status_code == 200
    down = "redis://127.0.0.1:1/0"  # nothing listens there: the API starts anyway and answers 503
    with TestClient(create_app(Settings(redis_url=down, redis_timeout=0.2))) as client:
        assert client.get("/readyz").status_code == 503
