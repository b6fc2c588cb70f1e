"""The Dramatiq middleware of our workers: ``Lifecycle`` opens the actors' dependencies when a worker
boots and closes them when it stops; ``Accounting`` counts every handled event (for /metrics) and logs
one line per event."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import redis
from dramatiq.broker import MessageProxy
from dramatiq.middleware import Middleware

from agent_sessions.worker.context import Worker

log = logging.getLogger("agent_sessions.worker")
IDLE_POLL_MS = 100


class Lifecycle(Middleware):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        # Dramatiq's Redis consumer polls an empty queue with a growing pause of up to the worker's
        # timeout (default 1,000 ms: up to a second between an event and its webhook on a quiet
        # system). Set here, before the consumers exist, so that `agent-sessions worker` and a plain
        # `dramatiq agent_sessions.workers` poll alike.
        worker.worker_timeout = min(worker.worker_timeout, IDLE_POLL_MS)
        self.worker.open()

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.worker.close()


class Accounting(Middleware):
    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        arg = message.args[0] if message.args else None
        outcome = "processed" if exception is None else "failed"
        events = arg if isinstance(arg, list) else [arg]
        try:
            self.worker.open().counters.add(f"{message.actor_name}:{outcome}", len(events))
        except redis.RedisError:
            log.warning("could not count %s events of %s", outcome, message.actor_name)
        if not isinstance(arg, list):  # not a batch of events (a webhook delivery): the actor logs it
            return
        level = logging.INFO if exception is None else logging.WARNING
        for event in events:
            fields = event if isinstance(event, dict) else {"event_id": event}
            log.log(
                level,
                "%s %s %s (%s %s/%s v%s)",
                message.actor_name,
                outcome,
                fields.get("event_id"),
                fields.get("type"),
                fields.get("agent_key"),
                fields.get("session_key"),
                fields.get("version"),
                extra={
                    "actor": message.actor_name,
                    "outcome": outcome,
                    "message_id": message.message_id,
                    "event_id": fields.get("event_id"),
                    "type": fields.get("type"),
                    "agent_key": fields.get("agent_key"),
                    "session_key": fields.get("session_key"),
                    "version": fields.get("version"),
                    "error": None if exception is None else repr(exception),
                },
            )
