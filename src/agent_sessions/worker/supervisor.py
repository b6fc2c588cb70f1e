"""``agent-sessions worker``: the outbox relay, the purge of deleted agents, the event log's
retention, the expiry sweep and the webhook deliveries (threads of this process), and the Dramatiq
workers (a child ``dramatiq agent_sessions.workers`` process), started and stopped together.
``--relay-only`` runs the five loops without Dramatiq workers; ``--actors-only`` runs only the
Dramatiq workers (as a plain ``dramatiq agent_sessions.workers`` would), so the two can be scaled apart.

SIGTERM or SIGINT stops the relay after its current batch, then the workers, which finish or return
their in-flight messages (Dramatiq's graceful shutdown). If any part dies, this command exits non-zero
so that a supervisor restarts it. Run several of these, on several machines, to scale out. The Dramatiq
child dies with this process even if it is killed outright (``process.die_with_parent``).
"""

from __future__ import annotations

import logging
import signal
import subprocess
import sys
import threading
from pathlib import Path
from types import FrameType

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.logs import configure as configure_logging
from agent_sessions.process import die_with_parent
from agent_sessions.redis import layout, topology
from agent_sessions.redis.keys import Keys
from agent_sessions.worker.broker import make_broker

log = logging.getLogger("agent_sessions.worker")
SHUTDOWN_TIMEOUT_MS = 30_000


def run_worker(
    settings: Settings,
    processes: int = 1,
    threads: int = 8,
    with_relay: bool = True,
    with_actors: bool = True,
    health_file: Path | None = None,
) -> int:
    """``health_file``: touched every half second while every part runs (for a container healthcheck)."""
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    # First: a stop asked while the checks below run is a clean stop once they are done.
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    client = bootstrap.worker_client(settings)
    configure_logging(settings.log_level, settings.log_format)
    topology.check(client, settings.redis_min_replica_acks)  # says what this Redis cannot give
    layout.wait_and_check(client, Keys.of(settings))  # another PARTITIONS: refused (ConfigError)
    broker = make_broker(settings)  # the relay only enqueues, by actor name
    if stop.is_set():
        client.close()
        broker.close()
        return 0
    workers = start_actors(processes, threads) if with_actors else None
    loops = []
    if with_relay:
        for name, target in bootstrap.relay_loops(settings, broker, client).named():
            thread = threading.Thread(target=target, args=(stop,), name=name, daemon=True)
            thread.start()
            loops.append(thread)
    code = 0
    while not stop.wait(0.5):
        if workers is not None and workers.poll() is not None:
            log.error("dramatiq workers exited with %s; stopping", workers.returncode)
            code = 1
            stop.set()
        elif any(not thread.is_alive() for thread in loops):
            stopped = ", ".join(thread.name for thread in loops if not thread.is_alive())
            log.error("a loop of this worker stopped (%s); stopping", stopped)
            code = 1
            stop.set()
        elif health_file is not None:
            health_file.touch()
    for thread in loops:
        thread.join(timeout=10)
    if workers is not None and workers.poll() is None:
        workers.send_signal(signal.SIGTERM)
        try:
            workers.wait(SHUTDOWN_TIMEOUT_MS / 1000 + 5)
        except subprocess.TimeoutExpired:
            workers.kill()
    client.close()
    broker.close()
    return code


def start_actors(processes: int, threads: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "dramatiq",
            "agent_sessions.workers",
            "--processes",
            str(processes),
            "--threads",
            str(threads),
            "--worker-shutdown-timeout",
            str(SHUTDOWN_TIMEOUT_MS),
            "--skip-logging",  # agent_sessions.workers configures it from the settings
        ],
        preexec_fn=die_with_parent,
    )
