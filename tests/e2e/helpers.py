"""Running our own commands as real processes."""

from __future__ import annotations

import contextlib
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from agent_sessions.redis.server import free_port

BIN = Path(sys.executable).parent


def command(name: str = "agent-sessions") -> str:
    return str(BIN / name)


def env(**extra: str) -> dict[str, str]:
    """The environment for one of our processes: none of the caller's Redis or broker, and no metrics
    listener unless asked (tests run side by side; the default port would be taken)."""
    base = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "BROKER_URL")}
    return base | {"METRICS_PORT": "0"} | extra


@contextlib.contextmanager
def serving(redis_url: str, *args: str, stderr: Path | None = None, **extra: str) -> Iterator[str]:
    """``agent-sessions serve`` on a free port (with ``args``, e.g. ``--workers 2``) until the block
    ends; yields its base URL. ``stderr``: a file for the server's logs."""
    port = free_port()
    with stderr.open("a") if stderr else open(os.devnull, "w") as err:
        proc = subprocess.Popen(
            [command(), "serve", "--port", str(port), *args],
            env=env(REDIS_URL=redis_url, **extra),
            text=True,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{base}/healthz")
        yield base
    finally:
        assert stop(proc, signal.SIGTERM)


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


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} did not come up in {timeout}s")


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
