"""Reporting: every session event updates its agent's aggregates, exactly once."""

from __future__ import annotations

import logging

import dramatiq

from agent_sessions.events.model import REPORT, EventDict
from agent_sessions.worker.context import ActorGraph, Worker

log = logging.getLogger("agent_sessions.actors.reporting")


def report_events(worker: ActorGraph, events: list[EventDict]) -> None:
    # A retried batch re-applies events already counted: report_apply.lua skips those.
    counted = worker.reports.apply_all(events)
    log.debug("counted %d of %d events", counted, len(events))


def declare(broker: dramatiq.Broker, worker: Worker) -> None:
    def actor(events: list[EventDict]) -> None:
        report_events(worker.open(), events)

    dramatiq.actor(
        actor_name=REPORT[0], queue_name=REPORT[1], broker=broker, max_retries=50, min_backoff=500, max_backoff=60_000
    )(actor)
