"""Reporting: every session event updates its agent's aggregates, exactly once."""

from __future__ import annotations

import logging

import dramatiq

from agent_sessions.broker import resources
from agent_sessions.events import REPORT, Event

log = logging.getLogger("agent_sessions.actors.reporting")


@dramatiq.actor(actor_name=REPORT[0], queue_name=REPORT[1], max_retries=50, min_backoff=500, max_backoff=60_000)
def report_events(events: list[Event]) -> None:
    # A retried batch re-applies events already counted: report_apply.lua skips those.
    counted = resources().reports.apply_all(events)
    log.debug("counted %d of %d events", counted, len(events))
