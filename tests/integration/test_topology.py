"""What each process checks about its Redis when it starts: on a Redis Cluster, what this version
cannot do there is refused with a reason; a REDIS_MIN_REPLICA_ACKS the primary's replicas cannot meet
is logged (tests/integration/test_replica_acks.py)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.web.app import create_app
from tests.support.cluster import cluster
from tests.support.processes import command, env

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster


def test_on_a_cluster_what_it_cannot_do_is_refused_at_start_and_said(tmp_path: Path) -> None:
    """The cluster client is chosen from INFO; REDIS_MIN_REPLICA_ACKS and Dramatiq's Redis broker,
    which a cluster cannot serve, are refused with the reason (the API's and the worker's own checks);
    the API otherwise starts and serves (tests/e2e/test_cluster.py runs everything on one)."""
    with cluster(tmp_path, primaries=3) as nodes:
        url = nodes[1].url
        acks = Settings(redis_url=url, redis_min_replica_acks=1)
        with pytest.raises(ConfigError, match="not supported on a Redis Cluster"), TestClient(create_app(acks)):
            pass
        with TestClient(create_app(Settings(redis_url=url))) as client:
            assert client.get("/readyz").status_code == 200
        for extra, said in (
            (
                {"REDIS_MIN_REPLICA_ACKS": "1", "BROKER_URL": "amqp://guest:guest@127.0.0.1:5672/"},
                "REDIS_MIN_REPLICA_ACKS",
            ),
            ({}, "Dramatiq's Redis broker cannot use"),  # BROKER_URL: REDIS_URL by default
        ):
            worker = subprocess.run(
                [command(), "worker", "--processes", "1"],
                capture_output=True,
                text=True,
                env=env(REDIS_URL=url, **extra),
                timeout=60,
            )
            assert worker.returncode == 2 and said in worker.stderr, worker.stderr


def test_a_standalone_redis_is_accepted_and_an_unreachable_one_is_checked_later(redis_url: str) -> None:
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        assert client.get("/healthz").status_code == 200
    down = "redis://127.0.0.1:1/0"  # nothing listens there: the API starts anyway and answers 503
    with TestClient(create_app(Settings(redis_url=down, redis_timeout=0.2))) as client:
        assert client.get("/readyz").status_code == 503
