"""The Dramatiq broker, built one way for every process that sends or handles messages.

``BROKER_URL`` (default ``REDIS_URL``) picks Dramatiq's Redis broker or, for ``amqp://``, RabbitMQ with
publisher confirms on (``enqueue`` returns only once RabbitMQ has the message). Messages are JSON,
written and read by orjson (``OrjsonEncoder``).
"""

from __future__ import annotations

from collections.abc import Sequence

import dramatiq
import orjson
from dramatiq.brokers.rabbitmq import RabbitmqBroker
from dramatiq.brokers.redis import RedisBroker
from dramatiq.encoder import Encoder, MessageData
from dramatiq.errors import DecodeError
from dramatiq.middleware import Middleware, Retries

from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.redis.client import cluster_enabled


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


def make_broker(settings: Settings, middleware: Sequence[Middleware] = ()) -> dramatiq.Broker:
    """A broker with Dramatiq's retries and ``middleware`` (the workers' own; none for a process that
    only sends)."""
    dramatiq.set_encoder(OrjsonEncoder())  # process-wide in Dramatiq: every message this process sends or reads
    url = settings.effective_broker_url
    if not url or not settings.redis_url:
        raise ConfigError("REDIS_URL is not set: the workers need Redis (and BROKER_URL, default REDIS_URL)")
    # Only the middleware we use: Dramatiq's defaults add an age limit, a time-limit timer thread,
    # callbacks and pipelines to every message, none of which these actors need.
    stack = [Retries(), *middleware]
    if url.startswith(("amqp://", "amqps://")):
        return RabbitmqBroker(url=url, confirm_delivery=True, middleware=stack)
    if cluster_enabled(url, settings.redis_timeout):
        # Dramatiq's Redis broker names its keys inside Lua from one namespace: no cluster can run it.
        raise ConfigError(
            "BROKER_URL (default: REDIS_URL) is a Redis Cluster node, which Dramatiq's Redis broker cannot"
            " use: set BROKER_URL to amqp://... (RabbitMQ) or to a standalone Redis"
        )
    return RedisBroker(  # type: ignore[no-untyped-call]
        url=url,
        middleware=stack,
        heartbeat_timeout=settings.redis_broker_heartbeat_ms,
        maintenance_chance=settings.redis_broker_maintenance_chance,
    )
