"""The access log: one line per request (request id, key id, method, route, path, status, duration).

Written straight to stderr in the process's log format (``LOG_FORMAT``: the JSON of
``logs.JsonFormatter``, or a text line), not through a ``logging.LogRecord``: making and formatting a
record, and the garbage it leaves, cost a PATCH about a fifth of its CPU (measured). It is on when
``LOG_LEVEL`` is INFO or DEBUG. Lines written during one turn of the event loop go out in one write
after it (under load many requests share it; a crash loses at most that turn's lines). Secrets are
never logged: the key id, never the key.
"""

from __future__ import annotations

import asyncio
import sys
import time
from typing import IO, Any

import orjson

from agent_sessions.config import Settings
from agent_sessions.logs import asc_time, iso_time

LOGGER = "agent_sessions.access"


class AccessLog:
    def __init__(self, fmt: str = "json", enabled: bool = True, stream: IO[str] | None = None) -> None:
        """``stream``: where lines go (default: the process's stderr at the time of writing)."""
        self.json = fmt == "json"
        self.enabled = enabled
        self.stream = stream
        self._pending: list[str] = []

    @classmethod
    def of(cls, settings: Settings) -> AccessLog:
        return cls(settings.log_format, settings.log_level in ("DEBUG", "INFO"))

    def line(
        self, rid: str, key_id: str | None, method: str, route: str, path: str, status: int, elapsed: float
    ) -> None:
        if not self.enabled:
            return
        message = f"{method} {route} {status}"
        duration = round(elapsed * 1000, 2)
        if self.json:
            entry: dict[str, Any] = {
                "ts": iso_time(time.time()),
                "level": "info",
                "logger": LOGGER,
                "msg": message,
                "request_id": rid,
                "key_id": key_id,
                "method": method,
                "route": route,
                "path": path,
                "status": status,
                "duration_ms": duration,
            }
            text = orjson.dumps(entry).decode() + "\n"
        else:
            text = f"{asc_time(time.time())} INFO {LOGGER}: {message} {rid} {duration}ms\n"
        self.write(text)

    def write(self, text: str) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._out().write(text)
            return
        if not self._pending:
            loop.call_soon(self.flush)
        self._pending.append(text)

    def flush(self) -> None:
        lines, self._pending = self._pending, []
        if lines:
            out = self._out()
            out.write("".join(lines))
            out.flush()

    def _out(self) -> IO[str]:
        return self.stream if self.stream is not None else sys.stderr
