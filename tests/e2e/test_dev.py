"""`agent-sessions dev` as a new user runs it: no setup, the printed curl works, data survives a restart."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

import httpx
import pytest
import redis

from agent_sessions.redis_server import free_port
from tests.e2e.helpers import command, env, read_until, stop, wait_http
from tests.integration.test_api_sessions import SEED_RESPONSE

pytestmark = pytest.mark.e2e


def start_dev(cwd: Path, port: int) -> tuple[subprocess.Popen[str], str]:
    with (cwd / "dev.log").open("a") as log:  # a file: a pipe nobody reads would fill and block the logs
        proc = subprocess.Popen(
            [command(), "dev", "--port", str(port)],
            cwd=cwd,
            env=env(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=log,
        )
    try:
        banner = read_until(proc, "Ctrl-C stops")
    except AssertionError:
        stop(proc, signal.SIGINT)
        raise
    return proc, banner


def curl_from(banner: str) -> str:
    lines = banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
    return "\n".join(lines[start : start + 3])


def test_dev_serves_the_seed_example_and_keeps_data(tmp_path: Path) -> None:
    port = free_port()
    proc, banner = start_dev(tmp_path, port)
    try:
        key = re.search(r"Admin key:\s+(ask_\S+)", banner)
        assert key, banner
        wait_http(f"http://127.0.0.1:{port}/healthz")
        # The printed curl, run exactly as a user would paste it.
        result = subprocess.run(["bash", "-c", curl_from(banner)], capture_output=True, text=True, timeout=60)
        assert result.returncode == 0, result
        body = httpx.Response(200, content=result.stdout).json()
        assert {k: body[k] for k in SEED_RESPONSE} == SEED_RESPONSE
        assert body["version"] == 2
        # dev runs the workers too: the seed's PATCH is an escalation, visible in the report.
        report_url = f"http://127.0.0.1:{port}/v2/agents/agt_customer_support/report"
        deadline = time.monotonic() + 60
        while httpx.get(report_url, headers={"x-api-key": key.group(1)}).json()["escalations"]["total"] != 1:
            assert time.monotonic() < deadline, "the seed's escalation was not recorded"
            time.sleep(0.2)
        redis_url = re.search(r"REDIS_URL=(\S+)", banner)
        assert redis_url and (tmp_path / ".data" / "appendonly.aof").exists()
    finally:
        assert stop(proc, signal.SIGINT)
    assert "Traceback" not in (tmp_path / "dev.log").read_text()  # Ctrl-C is a normal way to stop
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url.group(1)).ping()  # Ctrl-C stopped Redis too

    proc, banner2 = start_dev(tmp_path, port)
    try:
        assert key.group(1) in banner2  # the same key, printed again
        wait_http(f"http://127.0.0.1:{port}/healthz")
        session = httpx.get(
            f"http://127.0.0.1:{port}/v2/agents/agt_customer_support/sessions/ase_customer_support_001",
            headers={"x-api-key": key.group(1)},
        )
        assert session.json() == body  # data survived, no re-seed
    finally:
        assert stop(proc, signal.SIGINT)
