"""What each process checks about its Redis when it starts: a Redis Cluster is refused with a reason
(this version's scripts write keys a cluster would put in different slots); a REDIS_MIN_REPLICA_ACKS
the primary's replicas cannot meet is logged (tests/integration/test_replica_acks.py)."""

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


def test_the_api_and_the_worker_refuse_a_redis_cluster_and_say_why(tmp_path: Path) -> None:
    with cluster(tmp_path, primaries=3) as nodes:
        url = nodes[1].url
        with pytest.raises(ConfigError, match="Redis Cluster node"), TestClient(create_app(Settings(redis_url=url))):
            pass
        worker = subprocess.run(
            [command(), "worker", "--processes", "1"],
            capture_output=True,
            text=True,
            env=env(REDIS_URL=url, BROKER_URL="amqp://guest:guest@127.0.0.1:5672/"),
            timeout=60,
        )
        assert worker.returncode == 2, worker.stderr
        assert "REDIS_URL points at a Redis Cluster node" in worker.stderr


def test_a_standalone_redis_is_accepted_and_an_unreachable_one_is_checked_later(redis_url: str) -> None:
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        assert client.get("/healthz").status_code == 200
    down = "redis://127.0.0.1:1/0"  # nothing listens there: the API starts anyway and answers 503
    with TestClient(create_app(Settings(redis_url=down, redis_timeout=0.2))) as client:
        assert client.get("/readyz").status_code == 503
