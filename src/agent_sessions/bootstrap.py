"""The one place each kind of process is wired: its object graph, built from ``Settings``.

- ``api``: the HTTP API's graph (store, services, gate, feed, webhooks on one Redis client); the app's
  lifespan owns it.
- ``dramatiq_workers``: the Dramatiq worker process: the broker, and the actors, each given the
  process's ``worker.context.Worker`` (reports, escalations, counters, an HTTP client), opened when a
  worker boots and closed when it stops (``worker.middleware.Lifecycle``).
- ``relay_loops``: the outbox relay, the agent purge, the expiry sweep and the event log's retention of
  ``agent-sessions worker``.
- ``metrics_client``: what the metrics listener of ``serve`` reads.
- ``keyring``, ``reindexer`` and ``webhook_services_for_cli``: what the CLI needs.

Tests build the same graphs with their own settings, or pass a client of their own to ``api``.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import dramatiq
import redis
import redis.asyncio as aioredis

from agent_sessions.access.ratelimit import Gate, Limits
from agent_sessions.access.store import Keyring
from agent_sessions.access.tokens import Signer
from agent_sessions.config import Settings
from agent_sessions.escalations import rules
from agent_sessions.escalations.store import EscalationStore
from agent_sessions.events.feed import Feed
from agent_sessions.events.leases import Leases
from agent_sessions.events.outbox import Counters, Outbox
from agent_sessions.events.relay import Relay
from agent_sessions.events.store import EventLog, LogWriter, Retention
from agent_sessions.redis import layout
from agent_sessions.redis.acks import ReplicaAcks
from agent_sessions.redis.client import Batches, async_client, sync_client
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.migrate import Migration
from agent_sessions.reports.store import ReportStore
from agent_sessions.sessions.expiry import Expirer
from agent_sessions.sessions.indexes import Reindexer, SessionIndexes
from agent_sessions.sessions.models import MetadataLimits
from agent_sessions.sessions.purge import Purger
from agent_sessions.sessions.services import Services
from agent_sessions.sessions.store import Store
from agent_sessions.webhooks.delivery import DeliveryLoop
from agent_sessions.webhooks.model import SETTINGS_SUBSCRIPTION
from agent_sessions.webhooks.services import WebhookServices
from agent_sessions.webhooks.store import Bounds, Fanout, Webhooks
from agent_sessions.worker.broker import make_broker
from agent_sessions.worker.context import ActorGraph, Worker
from agent_sessions.worker.middleware import Accounting, Lifecycle


def metadata_limits(settings: Settings) -> MetadataLimits:
    return MetadataLimits(
        max_keys=settings.metadata_max_keys,
        max_key_length=settings.metadata_max_key_length,
        max_depth=settings.metadata_max_depth,
        max_bytes=settings.metadata_max_bytes,
    )


def rate_limits(settings: Settings) -> Limits:
    return Limits(
        rate=settings.rate_limit_rate,
        burst=settings.rate_limit_burst,
        failure_rate=settings.auth_failure_rate,
        failure_burst=settings.auth_failure_burst,
    )


# -- the API --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Api:
    settings: Settings
    client: aioredis.Redis
    store: Store
    services: Services
    gate: Gate
    feed: Feed
    webhooks: WebhookServices
    layout: layout.Guard
    tokens: Signer | None  # client tokens (CLIENT_TOKENS), or None when they are off

    async def aclose(self) -> None:
        await self.feed.close()
        await self.client.aclose()


def api(settings: Settings, client: aioredis.Redis | None = None) -> Api:
    """No connection is made here: the API starts while Redis is down and answers 503 until it returns."""
    if client is None:
        url = settings.required_redis_url("the API")
        client = async_client(url, settings.redis_timeout, settings.redis_pool_size, ReplicaAcks.of(settings))
    batches = Batches(client)  # the scripts of concurrent requests share pipelines
    store = Store(
        client,
        Keys.of(settings),
        history_max=settings.history_max,
        batches=batches,
        history_max_bytes=settings.history_max_bytes,
        dimensions=settings.report_dimensions,
    )
    services = Services(store, metadata_limits(settings), settings.report_dimensions, scan_max=settings.filter_scan_max)
    keys = Keys.of(settings)
    events = EventLog(client, keys, batches, scan_max=settings.events_scan_max)
    # The feed's blocking reads return well within the client's socket timeout.
    block_ms = max(50, int(settings.redis_timeout * 500))
    feed = Feed(events, settings.sse_queue_max, settings.sse_max_subscribers, block_ms, settings.sse_max_per_key)
    gate = Gate(client, keys, rate_limits(settings), batches)
    guard = layout.Guard(client, store.keys)
    signer = Signer(settings.client_token_secret) if settings.client_tokens and settings.client_token_secret else None
    return Api(settings, client, store, services, gate, feed, webhook_services(settings, client, events), guard, signer)


def webhook_services(settings: Settings, client: aioredis.Redis, events: EventLog) -> WebhookServices:
    return WebhookServices(
        Webhooks(client, Keys.of(settings), Bounds.of(settings)),
        events,
        metadata_limits(settings),
        rules.defaults(settings.escalate_when_becomes, settings.escalate_when_changes),
        allow_private=settings.webhook_allow_private_networks,
        settings_url=settings.escalation_webhook_url,
        settings_key=settings.webhook_key,
        timeout=settings.webhook_timeout,
    )


# -- the workers ----------------------------------------------------------------------------------------


def dramatiq_workers(settings: Settings) -> dramatiq.Broker:
    """The Dramatiq worker process: the broker, made Dramatiq's global one, with the actors declared on
    it, each given the process's ``Worker`` (opened when the worker boots, not here)."""
    from agent_sessions.worker import actors  # the actors import this module's Worker

    worker = Worker(settings, actor_graph)
    broker = make_broker(settings, [Lifecycle(worker), Accounting(worker)])
    dramatiq.set_broker(broker)
    actors.declare(broker, worker)
    return broker


def actor_graph(settings: Settings) -> ActorGraph:
    """What the actors of one worker process use (``worker.context.Worker`` opens it once)."""
    url = settings.required_redis_url("the workers")
    client = sync_client(url, timeout=settings.redis_timeout * 5, acks=ReplicaAcks.of(settings))
    keys = Keys.of(settings)
    s = settings
    fixed = [SETTINGS_SUBSCRIPTION] if s.escalation_webhook_url is not None else []
    return ActorGraph(
        client,
        ReportStore(client, keys, s.report_dimensions, s.report_max_values, s.report_value_max_chars),
        EscalationStore(client, keys, s.events_retention),
        Counters(client, keys),
        Fanout(client, keys, Bounds.of(s), fixed),
        rules.defaults(s.escalate_when_becomes, s.escalate_when_changes),
    )


def relay_loops(settings: Settings, broker: dramatiq.Broker, client: redis.Redis) -> Loops:
    """The loops of ``agent-sessions worker`` besides the actors: the relay (which also queues the
    webhook deliveries of each event), the purge of deleted agents, the event log's retention, the
    sweep of expired sessions and the webhook deliveries."""
    relay = Relay(
        Outbox(client, Keys.of(settings)),
        broker,
        Fanout(client, Keys.of(settings), Bounds.of(settings)),
        claim_idle_ms=settings.relay_claim_idle_ms,
        linger_ms=settings.relay_linger_ms,
        log=LogWriter(client, Keys.of(settings)),
    )
    relay.leases = Leases(client, Keys.of(settings), relay.name, settings.relay_claim_idle_ms)
    retention = Retention(client, Keys.of(settings), settings.events_retention, settings.events_max)
    dimensions = settings.report_dimensions
    purger = Purger(client, Keys.of(settings), settings.agent_delete_batch, dimensions)
    expirer = Expirer(client, Keys.of(settings), settings.expiry_batch, dimensions)
    return Loops(relay, purger, retention, expirer, deliveries(settings))


def deliveries(settings: Settings) -> DeliveryLoop:
    """The webhook delivery loop, with its own asyncio Redis client (it runs in a thread; its HTTP
    clients, one per endpoint, are its own too)."""
    client = async_client(settings.required_redis_url("webhook deliveries"), settings.redis_timeout * 5, 32)
    return DeliveryLoop(settings, Webhooks(client, Keys.of(settings), Bounds.of(settings)))


@dataclass(frozen=True)
class Loops:
    relay: Relay
    purger: Purger
    retention: Retention
    expirer: Expirer
    deliveries: DeliveryLoop

    def named(self) -> list[tuple[str, Callable[[threading.Event], None]]]:
        return [
            ("relay", self.relay.run),
            ("purge", self.purger.run),
            ("retention", self.retention.run),
            ("expiry", self.expirer.run),
            ("deliveries", self.deliveries.run),
        ]


def worker_client(settings: Settings) -> redis.Redis:
    url = settings.required_redis_url("the relay and workers")
    return sync_client(url, timeout=settings.redis_timeout * 5, acks=ReplicaAcks.of(settings))


# -- the CLI --------------------------------------------------------------------------------------------


def metrics_client(settings: Settings) -> redis.Redis:
    """The client the metrics listener reads the pipeline's state with (``serve``'s supervisor)."""
    return sync_client(settings.required_redis_url("the metrics listener"), timeout=settings.redis_timeout)


def keyring(settings: Settings) -> Keyring:
    client = sync_client(settings.required_redis_url("this command"), acks=ReplicaAcks.of(settings))
    return Keyring(client, Keys.of(settings))


def reindexer(settings: Settings) -> Reindexer:
    client = sync_client(settings.required_redis_url("this command"), acks=ReplicaAcks.of(settings))
    layout.check(client, Keys.of(settings))
    return Reindexer(client, SessionIndexes(Keys.of(settings), settings.report_dimensions))


def migration(settings: Settings) -> Migration:
    client = sync_client(settings.required_redis_url("this command"), timeout=60, acks=ReplicaAcks.of(settings))
    return Migration(client, Keys.of(settings))


def webhook_services_for_cli(settings: Settings) -> tuple[WebhookServices, Callable[[], Awaitable[None]]]:
    """The webhook use cases for a command, and how to close their client (from the command's loop)."""
    url = settings.required_redis_url("this command")
    client = async_client(url, settings.redis_timeout * 5, 4, ReplicaAcks.of(settings))
    return webhook_services(settings, client, EventLog(client, Keys.of(settings))), client.aclose
