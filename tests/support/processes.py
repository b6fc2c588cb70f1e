"""Running our own commands as real processes. Every process a test starts is started by a context
manager here, which stops it however the block ends, so no test leaves a server or worker behind."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

import httpx

from agent_sessions.redis.server import free_port
from tests.support.wait import eventually

BIN = Path(sys.executable).parent


def command(name: str = "agent-sessions") -> str:
    return str(BIN / name)


def env(**extra: str) -> dict[str, str]:
    """The environment for one of our processes: none of the caller's Redis or broker, and no metrics
    listener unless asked (tests run side by side; the default port would be taken)."""
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKER_URL")}
    return base | {"METRICS_PORT": "0"} | extra


@contextlib.contextmanager
def running(
    argv: Sequence[str],
    environment: dict[str, str],
    *,
    group: bool = False,
    stderr: IO[Any] | int | None = subprocess.DEVNULL,
    stdout: IO[Any] | int | None = subprocess.DEVNULL,
    text: bool = False,
    cwd: Path | None = None,
) -> Iterator[subprocess.Popen[Any]]:
    """``argv`` as a child process for the block; stopped after it (SIGTERM, then SIGKILL after 60 s)
    unless the block stopped it already. ``group``: in its own process group, signalled as a whole (the
    worker and its Dramatiq children)."""
    proc = subprocess.Popen(
        list(argv), env=environment, start_new_session=group, stdout=stdout, stderr=stderr, text=text, cwd=cwd
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            signal_process(proc, signal.SIGTERM, group)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                signal_process(proc, signal.SIGKILL, group)
                proc.wait()


def signal_process(proc: subprocess.Popen[Any], sig: int, group: bool = False) -> None:
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        if group:
            os.killpg(proc.pid, sig)
        else:
            proc.send_signal(sig)


def serving(
    redis_url: str, *args: str, stderr: Path | None = None, **extra: str
) -> contextlib.AbstractContextManager[str]:
    """``agent-sessions serve`` on ``redis_url`` with the settings ``extra`` (see ``serve``)."""
    return serve(env(REDIS_URL=redis_url, **extra), *args, stderr=stderr)


@contextlib.contextmanager
def serve(environment: dict[str, str], *args: str, stderr: Path | None = None) -> Iterator[str]:
    """``agent-sessions serve`` on a free port (with ``args``, e.g. ``--workers 2``) until the block
    ends, which must find it stopping cleanly; yields its base URL. ``stderr``: a file for its logs."""
    port = free_port()
    with (
        stderr.open("a") if stderr else open(os.devnull, "w") as err,
        running([command(), "serve", "--port", str(port), *args], environment, stderr=err) as proc,
    ):
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz", proc)
        yield base
        assert stop(proc, signal.SIGTERM)


@contextlib.contextmanager
def working(environment: dict[str, str], *args: str) -> Iterator[subprocess.Popen[Any]]:
    """``agent-sessions worker --threads 4`` (with ``args``) in its own process group, so that a signal
    reaches the relay and the Dramatiq children at once (``kill_group``)."""
    with running([command(), "worker", "--threads", "4", *args], environment, group=True) as proc:
        yield proc


def kill_group(proc: subprocess.Popen[Any]) -> None:
    """SIGKILL the process and its children, with no warning (a machine dying)."""
    signal_process(proc, signal.SIGKILL, group=True)
    proc.wait()


def read_until(proc: subprocess.Popen[str], marker: str, timeout: float = 30.0) -> str:
    """Collect stdout until a line contains ``marker`` (or fail with what was seen).

    A thread reads, because select() on a buffered pipe misses lines already in the buffer.
    """
    assert proc.stdout is not None
    stdout = proc.stdout
    lines: queue.Queue[str] = queue.Queue()

    def pump() -> None:
        for line in stdout:
            lines.put(line)

    threading.Thread(target=pump, daemon=True).start()
    seen: list[str] = []
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.1)
        except queue.Empty:
            if proc.poll() is not None:
                break
            continue
        seen.append(line)
        if marker in line:
            return "".join(seen)
    raise AssertionError(f"{marker!r} not seen; output so far:\n{''.join(seen)}")


def answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


def wait_http(url: str, proc: subprocess.Popen[Any] | None = None, timeout: float = 30.0) -> None:
    """Until ``url`` answers 200; fails at once if ``proc`` (the server) exits meanwhile."""

    def up() -> bool:
        assert proc is None or proc.poll() is None, f"the server exited with {proc.returncode}"
        return answers(url)

    eventually(up, f"{url} did not come up", timeout)


def stop(proc: subprocess.Popen[Any], sig: int, timeout: float = 20.0) -> bool:
    """Send ``sig`` and wait; True when the process ended cleanly (exit 0, or by that very signal,
    which uvicorn re-raises after its graceful shutdown)."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return proc.wait(timeout) in (0, -sig)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("process did not stop on signal") from None
