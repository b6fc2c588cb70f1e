"""The tests' Redis on another date: with ``AGENT_SESSIONS_TEST_CLOCK`` set (a libfaketime offset such as
``+730d``), the tests' Redis servers run with their clock moved by it.

Every time the service stores or compares comes from Redis ``TIME`` (never an API process's clock), so
moving Redis's clock is moving the service's calendar. Only Redis is moved: libfaketime's timed waits
hang Python's threads (``sem_clockwait`` is not intercepted), so the test process keeps the real clock
and fixtures take "now" from Redis (``redis_now_ms``). ``tests/integration/test_any_date.py`` runs the
time-sensitive modules this way.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path
from typing import Any

from agent_sessions.redis.server import redis_executable as real_redis_executable
from tests.support.wait import eventually

OFFSET = os.environ.get("AGENT_SESSIONS_TEST_CLOCK", "")
LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")


def libfaketime() -> Path | None:
    """Debian's libfaketime (package ``faketime``), where this machine has it."""
    for candidate in (LIBFAKETIME, *Path("/usr/lib").glob("*/faketime/libfaketime.so.1")):
        if candidate.exists():
            return candidate
    return None


def redis_executable() -> str | None:
    """The tests' ``redis-server``: None (the usual one), or with ``OFFSET`` a wrapper that starts it
    under libfaketime (``exec``, so the server keeps the pid the tests signal)."""
    if not OFFSET:
        return None
    library = libfaketime()
    if library is None:
        raise RuntimeError("AGENT_SESSIONS_TEST_CLOCK needs libfaketime: apt-get install faketime")
    wrapper = Path(tempfile.mkdtemp(prefix="redis-clock-")) / "redis-server"
    wrapper.write_text(f'#!/bin/sh\nLD_PRELOAD="{library}" FAKETIME="{OFFSET}" exec "{real_redis_executable()}" "$@"\n')
    wrapper.chmod(wrapper.stat().st_mode | stat.S_IXUSR)
    return str(wrapper)


def redis_now_ms(conn: Any) -> int:
    """Redis's own time (``TIME``), in milliseconds: "now" for fixtures."""
    seconds, micros = conn.time()
    return int(seconds) * 1000 + int(micros) // 1000


def until_redis_time(conn: Any, ms: float, what: str) -> None:
    """Wait until Redis's clock (the one the scripts compare with) passes ``ms``: a lease or a backoff
    that is over in Redis's eyes, not after a guessed sleep."""
    eventually(lambda: redis_now_ms(conn) > ms, f"Redis time never passed {what}", timeout=10)
