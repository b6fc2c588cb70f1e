"""The whole `agent-sessions worker` (relay and Dramatiq processes) killed with SIGKILL mid-stream:
after a new worker starts, every event is processed and the report equals a recount."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator

import pytest
import redis

from agent_sessions.auth import Role
from agent_sessions.redis.apikeys import Keyring
from agent_sessions.redis.server import free_port
from tests.e2e.helpers import command, env, stop, wait_http
from tests.e2e.test_pipeline_processes import broker_url  # noqa: F401  (fixture)
from tests.faults.helpers import (
    FAST_REDELIVERY,
    assert_report_equals_recount,
    start_worker,
    stop_group,
    stream_with_fault,
)

pytestmark = pytest.mark.e2e


@pytest.fixture
def api(redis_url: str) -> Iterator[tuple[str, dict[str, str]]]:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(conn).create(Role.ADMIN, rate=1e6, burst=10**6)
    port = free_port()
    proc = subprocess.Popen(
        [command(), "serve", "--port", str(port)],
        env=env(REDIS_URL=redis_url),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        yield f"http://127.0.0.1:{port}", {"x-api-key": secret}
    finally:
        assert stop(proc, signal.SIGTERM)


def test_worker_killed_mid_stream_loses_nothing(
    api: tuple[str, dict[str, str]],
    redis_url: str,
    broker_url: str,  # noqa: F811
) -> None:
    base, headers = api
    settings = env(REDIS_URL=redis_url, BROKER_URL=broker_url, **FAST_REDELIVERY)
    first = start_worker(settings)
    second = None

    def kill() -> None:
        stop_group(first)  # SIGKILL, mid-stream, no warning

    try:
        stream_with_fault(base, headers, sessions=10, patches=600, fault=kill)
        second = start_worker(settings)
        assert_report_equals_recount(base, headers, redis_url)
    finally:
        stop_group(first)
        if second is not None:
            os.killpg(second.pid, signal.SIGTERM)
            second.wait(60)
