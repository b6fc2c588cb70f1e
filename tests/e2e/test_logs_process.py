"""The real `serve` process writes one JSON line per request to stderr, and filters by LOG_LEVEL."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from tests.support.processes import serving

pytestmark = pytest.mark.e2e


def run_serve(redis_url: str, tmp_path: Path, **settings: str) -> list[dict[str, object]]:
    log = tmp_path / "serve.log"
    with serving(redis_url, stderr=log, **settings) as base:
        httpx.get(f"{base}/v2/agents", headers={"x-request-id": "from-test"})
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def test_serve_logs_json_lines(redis_url: str, tmp_path: Path) -> None:
    lines = run_serve(redis_url, tmp_path)
    access = [line for line in lines if line.get("request_id") == "from-test"]
    assert len(access) == 1
    assert (
        access[0]["status"] == 401
        and access[0]["route"] == "/v2/agents"
        and access[0]["logger"] == "agent_sessions.access"
    )
    assert any("uvicorn" in str(line["logger"]) for line in lines)  # the server's own lines are JSON too


def test_log_level_filters(redis_url: str, tmp_path: Path) -> None:
    lines = run_serve(redis_url, tmp_path, LOG_LEVEL="warning")
    assert not [line for line in lines if line.get("request_id") == "from-test"]
