"""The loop of the workers' background jobs that work in bounded steps (the agent purge, the event
log's retention, the expiry sweep): one step after another while there is work, a pause when not."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import redis

from agent_sessions.errors import StoreUnavailable

log = logging.getLogger("agent_sessions.steps")


def run_steps(step: Callable[[], bool], stop: threading.Event, idle_s: float, what: str) -> None:
    """Call ``step`` (True: there is more to do) until ``stop`` is set: at once while it has more,
    letting the process's other threads in between; after ``idle_s`` when it has not, or when Redis
    failed (logged as ``what``, then retried)."""
    while not stop.is_set():
        try:
            busy = step()
        except (redis.RedisError, StoreUnavailable) as exc:  # an outage, too few replicas, a moved slot
            log.warning("%s step failed (%r); retrying", what, exc)
            busy = False
        if busy:
            time.sleep(0)
        else:
            stop.wait(idle_s)
