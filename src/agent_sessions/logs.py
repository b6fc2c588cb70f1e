"""Logging: one JSON object per line (or plain text for a terminal), at a level operators choose.

``LOG_LEVEL`` (default INFO) and ``LOG_FORMAT`` (``json`` or ``text``) are settings; every entry point
calls :func:`configure` once. Records carry their extra fields (``request_id``, ``key_id``, ``route``,
``status``, ``duration_ms``, ``event_id``…) as top-level keys. Secrets are never logged: requests log
the key id, not the key.
"""

from __future__ import annotations

import logging
import sys
import time
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

import orjson

# Attributes every LogRecord has; anything else on a record came from `extra=` and is logged.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@lru_cache(maxsize=64)
def _second(seconds: int) -> str:
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@lru_cache(maxsize=64)
def _local_second(seconds: int) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(seconds))


def asc_time(at: float) -> str:
    """``at`` as the text format's ``asctime`` (local time, milliseconds after a comma)."""
    whole = int(at)
    return f"{_local_second(whole)},{int((at - whole) * 1000):03d}"


def iso_time(at: float) -> str:
    """``at`` (seconds since the epoch) as the logs' ``ts``: RFC 3339 UTC, to the millisecond."""
    whole = int(at)
    return f"{_second(whole)}.{int((at - whole) * 1000):03d}Z"


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        entry.update({k: v for k, v in vars(record).items() if k not in _STANDARD})
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def dict_config(level: str = "INFO", fmt: str = "json") -> dict[str, Any]:
    """The same configuration as a ``logging.config.dictConfig`` dict, for uvicorn's ``log_config``
    (uvicorn applies it in every worker process it starts)."""
    formatter = {"()": JsonFormatter} if fmt == "json" else {"format": TEXT_FORMAT}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"default": formatter},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "formatter": "default", "stream": "ext://sys.stderr"}
        },
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": False, "level": "CRITICAL"},
        },
    }


def configure(level: str = "INFO", fmt: str = "json") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # uvicorn's own access log duplicates ours (ours has the request id and key id)
    logging.getLogger("uvicorn.access").disabled = True
    # Dramatiq's retry lines ("Retrying message … in N ms", "Retries exceeded") repeat what our actors
    # and middleware log per attempt, with the event and destination; keep only its errors.
    logging.getLogger("dramatiq.middleware.retries.Retries").setLevel(logging.ERROR)
