"""The real `serve` process writes one JSON line per request to stderr, and filters by LOG_LEVEL."""

from __future__ import annotations

import json
import signal
import subprocess

import httpx
import pytest

from agent_sessions.redis.server import free_port
from tests.e2e.helpers import command, env, stop, wait_http

pytestmark = pytest.mark.e2e


def run_serve(redis_url: str, **settings: str) -> list[dict[str, object]]:
    port = free_port()
    proc = subprocess.Popen(
        [command(), "serve", "--port", str(port)],
        env=env(REDIS_URL=redis_url, **settings),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        httpx.get(f"http://127.0.0.1:{port}/v2/agents", headers={"x-request-id": "from-test"})
    finally:
        assert stop(proc, signal.SIGTERM)
    assert proc.stderr is not None
    return [json.loads(line) for line in proc.stderr.read().splitlines() if line.strip()]


def test_serve_logs_json_lines(redis_url: str) -> None:
    lines = run_serve(redis_url)
    access = [line for line in lines if line.get("request_id") == "from-test"]
    assert len(access) == 1
    assert (
        access[0]["status"] == 401
        and access[0]["route"] == "/v2/agents"
        and access[0]["logger"] == "agent_sessions.access"
    )
    assert any("uvicorn" in str(line["logger"]) for line in lines)  # the server's own lines are JSON too


def test_log_level_filters(redis_url: str) -> None:
    lines = run_serve(redis_url, LOG_LEVEL="warning")
    assert not [line for line in lines if line.get("request_id") == "from-test"]
