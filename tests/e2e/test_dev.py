"""`agent-sessions dev` as a new user runs it: no setup, the printed curl works, data survives a restart."""

from __future__ import annotations

import contextlib
import re
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from agent_sessions import dev
from agent_sessions.redis.server import free_port
from tests.support.api import SEED_RESPONSE
from tests.support.processes import command, env, read_until, running, stop, wait_http
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e


@contextlib.contextmanager
def developing(cwd: Path, port: int) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``agent-sessions dev`` in ``cwd`` for the block: (the process, its banner)."""
    argv = [command(), "dev", "--port", str(port)]
    with (
        (cwd / "dev.log").open("a") as log,  # a file: a pipe nobody reads would fill and block the logs
        running(argv, env(), stdout=subprocess.PIPE, stderr=log, text=True, cwd=cwd) as proc,
    ):
        yield proc, read_until(proc, "Ctrl-C stops")


def curl_from(banner: str) -> str:
    lines = banner.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("curl "))
    return "\n".join(lines[start : start + 3])


def test_dev_serves_the_seed_example_and_keeps_data(tmp_path: Path) -> None:
    port = free_port()
    with developing(tmp_path, port) as (proc, banner):
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
        eventually(
            lambda: httpx.get(report_url, headers={"x-api-key": key.group(1)}).json()["escalations"]["total"] == 1,
            "the seed's escalation was not recorded",
            timeout=60,
        )
        redis_url = re.search(r"REDIS_URL=(\S+)", banner)
        assert redis_url and (tmp_path / ".data" / "appendonly.aof").exists()
        assert stop(proc, signal.SIGINT)
    assert tracebacks((tmp_path / "dev.log").read_text()) == 0  # Ctrl-C is a normal way to stop
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(redis_url.group(1)).ping()  # Ctrl-C stopped Redis too

    with developing(tmp_path, port) as (proc, banner2):
        assert key.group(1) in banner2  # the same key, printed again
        wait_http(f"http://127.0.0.1:{port}/healthz")
        session = httpx.get(
            f"http://127.0.0.1:{port}/v2/agents/agt_customer_support/sessions/ase_customer_support_001",
            headers={"x-api-key": key.group(1)},
        )
        assert session.json() == body  # data survived, no re-seed
        assert stop(proc, signal.SIGINT)


def tracebacks(log: str) -> int:
    """Tracebacks in a log, less the "Exception ignored in: …" reports Python prints when a signal
    interrupts a finalizer at a Dramatiq worker process's exit (its shutdown, not ours)."""
    return log.count("Traceback (most recent call last)") - log.count("Exception ignored in")


def family(proc: subprocess.Popen[str]) -> list[psutil.Process]:
    return psutil.Process(proc.pid).children(recursive=True)


def alive(processes: list[psutil.Process]) -> list[psutil.Process]:
    """Those still running (zombies count as gone)."""
    return [p for p in processes if still_running(p)]


def still_running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # it ended between the two questions
        return False


def command_line(process: psutil.Process) -> str:
    """Its command line; "" for a process that ended meanwhile (a child of a child, short-lived)."""
    try:
        return " ".join(process.cmdline())
    except psutil.Error:
        return ""


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGKILL])
def test_any_stop_of_dev_leaves_no_process_behind(tmp_path: Path, sig: signal.Signals) -> None:
    with developing(tmp_path, free_port()) as (proc, _):

        def with_workers() -> list[psutil.Process]:
            found = family(proc)
            return found if any("dramatiq" in command_line(c) for c in found) else []

        children = eventually(with_workers, "the Dramatiq workers did not start")
        try:
            assert any("redis-server" in command_line(c) for c in children)
            proc.send_signal(sig)
            proc.wait(60)
            eventually(lambda: not alive(children), "processes left behind", timeout=60)
        finally:  # whatever failed above, leave nothing running for the tests after this one
            for process in [psutil.Process(proc.pid), *children] if proc.poll() is None else children:
                with contextlib.suppress(psutil.Error):
                    process.kill()
    if sig != signal.SIGKILL:
        assert proc.returncode == 0, proc.returncode
        assert tracebacks((tmp_path / "dev.log").read_text()) == 0
    # the data directory is free again: a new dev starts on it, and stops at once on Ctrl-C
    with developing(tmp_path, free_port()) as (proc, _):
        assert stop(proc, signal.SIGINT, timeout=60)


def test_a_second_dev_on_the_same_data_refuses_and_a_taken_port_fails_before_the_banner(tmp_path: Path) -> None:
    with developing(tmp_path, free_port()) as (proc, _):
        second = subprocess.run(
            [command(), "dev", "--port", str(free_port())],
            cwd=tmp_path,
            env=env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert second.returncode != 0
        assert "another `agent-sessions dev`" in second.stderr and str(proc.pid) in second.stderr
        assert stop(proc, signal.SIGINT)

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        third = subprocess.run(
            [command(), "dev", "--port", str(port)], cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=60
        )
    assert third.returncode != 0 and f"127.0.0.1:{port}" in third.stderr
    assert "curl" not in third.stdout and "Admin key" not in third.stdout
    assert not (tmp_path / ".data" / "redis.sock").exists()  # Redis never started


def test_a_taken_metrics_port_fails_before_anything_starts_and_leaves_no_data_directory(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        run = subprocess.run(
            [command(), "dev", "--port", str(free_port())],
            cwd=tmp_path,
            env=env(METRICS_PORT=str(port)),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert run.returncode == 2 and f"METRICS_PORT {port}" in run.stderr, run.stderr
    assert "Admin key" not in run.stdout
    assert not (tmp_path / ".data").exists()


def test_banner_tells_where_escalations_go_and_where_the_cli_is(tmp_path: Path) -> None:
    assert "are recorded and logged" in dev.banner("http://x", "redis://y", "ask_k", None)
    assert "receivers on this machine are allowed" in dev.banner("http://x", "redis://y", "ask_k", None, True)
    strict = dev.banner("http://x", "redis://y", "ask_k", None, allow_private=False)
    assert "WEBHOOK_ALLOW_PRIVATE_NETWORKS=false" in strict and "are allowed" not in strict
    posted = dev.banner("http://x", "redis://y", "ask_k", "https://hooks.example/page")
    assert "POSTed to https://hooks.example/page" in posted and "recorded and logged" not in posted
    cli_line = next(line for line in posted.splitlines() if "CLI:" in line)
    assert Path(cli_line.split()[1]).exists()


def test_make_dev_takes_a_port() -> None:
    root = Path(__file__).resolve().parents[2]
    dry = subprocess.run(["make", "-n", "dev", "PORT=8123"], cwd=root, capture_output=True, text=True, check=True)
    assert "agent-sessions dev --port 8123" in dry.stdout
