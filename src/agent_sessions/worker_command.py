"""``agent-sessions worker``: the outbox relay (in this process) and the Dramatiq workers (a child
``dramatiq agent_sessions.workers`` process), started and stopped together.

SIGTERM or SIGINT stops the relay after its current batch, then the workers, which finish or return
their in-flight messages (Dramatiq's graceful shutdown). If the workers die, this command exits non-zero
so that a supervisor restarts the pair. Run several of these, on several machines, to scale out.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
from types import FrameType

from agent_sessions.broker import make_broker
from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.logs import configure as configure_logging
from agent_sessions.outbox import Relay
from agent_sessions.purge import Purger
from agent_sessions.redis_client import sync_client

log = logging.getLogger("agent_sessions.worker")
SHUTDOWN_TIMEOUT_MS = 30_000
# Dramatiq's Redis consumer polls an empty queue with a growing pause of up to this many ms; its default
# (1000) puts up to a second between an event and its webhook on a quiet system.
IDLE_POLL_MS = "100"


def run_worker(settings: Settings, processes: int = 1, threads: int = 8) -> int:
    if not settings.redis_url:
        raise ConfigError("REDIS_URL is not set: the relay and workers need Redis")
    configure_logging(settings.log_level, settings.log_format)
    broker = make_broker(settings)  # the relay only enqueues, by actor name
    client = sync_client(settings.redis_url, timeout=settings.redis_timeout * 5)
    relay = Relay(client, broker, claim_idle_ms=settings.relay_claim_idle_ms, linger_ms=settings.relay_linger_ms)
    stop = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    workers = subprocess.Popen(
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
        env={**os.environ, "dramatiq_worker_timeout": IDLE_POLL_MS},  # the child reads its settings from env
    )
    relay_thread = threading.Thread(target=relay.run, args=(stop,), name="relay", daemon=True)
    relay_thread.start()
    purger = Purger(client, settings.agent_delete_batch)
    purge_thread = threading.Thread(target=purger.run, args=(stop,), name="purge", daemon=True)
    purge_thread.start()
    code = 0
    while not stop.wait(0.5):
        if workers.poll() is not None:
            log.error("dramatiq workers exited with %s; stopping", workers.returncode)
            code = 1
            stop.set()
        elif not relay_thread.is_alive():
            log.error("the relay stopped; stopping")
            code = 1
            stop.set()
    relay_thread.join(timeout=10)
    purge_thread.join(timeout=10)
    if workers.poll() is None:
        workers.send_signal(signal.SIGTERM)
        try:
            workers.wait(SHUTDOWN_TIMEOUT_MS / 1000 + 5)
        except subprocess.TimeoutExpired:
            workers.kill()
    client.close()
    broker.close()
    return code
