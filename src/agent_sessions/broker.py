"""``setup_broker()``: the one place the Dramatiq side is wired.

``BROKER_URL`` (default ``REDIS_URL``) picks Dramatiq's Redis broker or, for ``amqp://``, RabbitMQ with
publisher confirms on (``enqueue`` returns only once RabbitMQ has the message). The worker's own Redis
connection (reports, escalations) is owned by the ``WorkerResources`` middleware: opened when a
worker boots, closed when it shuts down, never at import.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
import httpx
import orjson
import redis
from dramatiq.broker import MessageProxy
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.encoder import Encoder, MessageData
from dramatiq.errors import DecodeError
from dramatiq.middleware import Middleware, Retries

from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.escalations import METRICS as COUNTERS
from agent_sessions.escalations import EscalationRule, Escalations
from agent_sessions.events import DEAD_LETTER, DELIVER_WEBHOOK
from agent_sessions.redis_client import sync_client
from agent_sessions.reports import Reports

log = logging.getLogger("agent_sessions.worker")
IDLE_POLL_MS = 100


class WorkerResources(Middleware):
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: redis.Redis | None = None
        self.reports: Reports
        self.escalations: Escalations
        self.http: httpx.Client

    @property
    def rule(self) -> EscalationRule:
        return EscalationRule(self.settings.escalate_when_becomes, self.settings.escalate_when_changes)

    def open(self) -> None:
        if self._redis is None:
            assert self.settings.redis_url
            self._redis = sync_client(self.settings.redis_url, timeout=self.settings.redis_timeout * 5)
            self.reports = Reports(
                self._redis,
                self.settings.report_dimensions,
                self.settings.report_max_values,
                self.settings.report_value_max_chars,
            )
            self.escalations = Escalations(self._redis)
            # One keep-alive connection pool for webhook deliveries, shared by the worker's threads.
            self.http = httpx.Client(timeout=self.settings.webhook_timeout, follow_redirects=False)

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self.http.close()
            self._redis = None

    def before_worker_boot(self, broker: dramatiq.Broker, worker: Any) -> None:
        # Dramatiq's Redis consumer polls an empty queue with a growing pause of up to the worker's
        # timeout (default 1,000 ms: up to a second between an event and its webhook on a quiet
        # system). Set here, before the consumers exist, so that `agent-sessions worker` and a plain
        # `dramatiq agent_sessions.workers` poll alike.
        worker.worker_timeout = min(worker.worker_timeout, IDLE_POLL_MS)
        self.open()

    def after_process_message(
        self,
        broker: dramatiq.Broker,
        message: MessageProxy,
        *,
        result: Any = None,
        exception: BaseException | None = None,
    ) -> None:
        """Count every handled event per actor (in Redis, for /metrics) and log one line per event."""
        arg = message.args[0] if message.args else None
        outcome = "processed" if exception is None else "failed"
        events = arg if isinstance(arg, list) else [arg]
        self.open()
        assert self._redis is not None
        try:
            self._redis.hincrby(COUNTERS, f"{message.actor_name}:{outcome}", len(events))
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

    def after_worker_shutdown(self, broker: dramatiq.Broker, worker: Any) -> None:
        self.close()


class OrjsonEncoder(Encoder):
    """Messages as JSON, like Dramatiq's default encoder, written and read by orjson, which is several
    times faster than the stdlib's json on the whole events each message carries (a few percent of the
    relay's and the workers' CPU in profiles). The two read each other's output, so messages already
    queued stay readable either way."""

    def encode(self, data: MessageData) -> bytes:
        return orjson.dumps(data)

    def decode(self, data: bytes) -> MessageData:
        try:
            decoded: MessageData = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise DecodeError(f"failed to decode message {data!r}", data, exc) from None  # type: ignore[no-untyped-call]
        return decoded


def make_broker(settings: Settings) -> dramatiq.Broker:
    dramatiq.set_encoder(OrjsonEncoder())  # process-wide in Dramatiq: every message this process sends or reads
    url = settings.effective_broker_url
    if not url or not settings.redis_url:
        raise ConfigError("REDIS_URL is not set: the workers need Redis (and BROKER_URL, default REDIS_URL)")
    broker: dramatiq.Broker
    # Only the middleware we use: Dramatiq's defaults add an age limit, a time-limit timer thread,
    # callbacks and pipelines to every message, none of which these actors need.
    middleware = [Retries(), WorkerResources(settings)]
    if url.startswith(("amqp://", "amqps://")):
        broker = RabbitmqBroker(url=url, confirm_delivery=True, middleware=middleware)
    else:
        broker = RedisBroker(  # type: ignore[no-untyped-call]
            url=url,
            middleware=middleware,
            heartbeat_timeout=settings.redis_broker_heartbeat_ms,
            maintenance_chance=settings.redis_broker_maintenance_chance,
        )
    return broker


def setup_broker(settings: Settings | None = None) -> dramatiq.Broker:
    """Build the broker and make it Dramatiq's global one (actors bind to it when imported)."""
    broker = make_broker(settings or Settings.from_env())
    dramatiq.set_broker(broker)
    return broker


def resources(broker: dramatiq.Broker | None = None) -> WorkerResources:
    for middleware in (broker or dramatiq.get_broker()).middleware:
        if isinstance(middleware, WorkerResources):
            middleware.open()
            return middleware
    raise RuntimeError("the broker was not built by setup_broker()")


def enqueue_delivery(broker: dramatiq.Broker, settings: Settings, event_id: str) -> None:
    """Queue one webhook delivery by actor name, with the retry schedule from the settings."""
    actor, queue = DELIVER_WEBHOOK
    options = {
        "max_retries": settings.webhook_max_retries,
        "min_backoff": settings.webhook_min_backoff_ms,
        "max_backoff": settings.webhook_max_backoff_ms,
        "on_retry_exhausted": DEAD_LETTER[0],
    }
    broker.enqueue(dramatiq.Message(queue_name=queue, actor_name=actor, args=(event_id,), kwargs={}, options=options))
