"""Reporting: every session event updates its agent's aggregates, exactly once."""

from __future__ import annotations

import logging

import dramatiq

from agent_sessions.broker import resources
from agent_sessions.events import REPORT, Event

log = logging.getLogger("agent_sessions.actors.reporting")


@dramatiq.actor(actor_name=REPORT[0], queue_name=REPORT[1], max_retries=50, min_backoff=500, max_backoff=60_000)
def report_event(event: Event) -> None:
    applied = resources().reports.apply(event)
    log.debug(
        "%s %s v%s %s",
        event["type"],
        event["session_key"],
        event["version"],
        (applied and "counted") or "duplicate",
    )
