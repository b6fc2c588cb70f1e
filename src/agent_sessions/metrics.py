"""Prometheus metrics, served on their own listener (``METRICS_HOST:METRICS_PORT``, default
127.0.0.1:9464), never on the API's port: scraping costs CPU, and operations data is not public.

HTTP metrics are kept per API process (prometheus-client; with ``serve --workers N`` in its
multiprocess mode, served by the supervising process, which handles no requests). Pipeline metrics are
the same for every process, so they are read from Redis when scraped: the outbox backlog and relay lag,
and the counters the workers keep in Redis (``events.outbox.Counters``) (events processed and failed per actor,
webhook deliveries and failed attempts, dead letters). A scrape is one Redis round trip plus rendering.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from typing import Any

import redis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from agent_sessions.errors import ConfigError
from agent_sessions.events.outbox import pipeline_snapshot
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.outages import OUTAGE_ERRORS

REQUESTS = Counter("agent_sessions_http_requests", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "agent_sessions_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RATE_LIMITED = Counter("agent_sessions_rate_limited", "Requests refused with 429", ["reason"])
# REDIS_MIN_REPLICA_ACKS: writes that applied on the primary but were answered 503 (replication lag,
# or fewer replicas than the setting), as apart from 503s of an unreachable Redis.
REPLICA_ACKS_MISSED = Counter(
    "agent_sessions_replica_acks_missed", "Writes answered 503: too few replicas confirmed them in time"
)
# Label sets known in advance exist from the start, so that dashboards see zeros, not gaps.
for _reason in ("key", "address", "streams"):
    RATE_LIMITED.labels(_reason)


class PipelineCollector:
    """Yields the pipeline metrics from a snapshot read from Redis just before the scrape."""

    def __init__(self, snapshot: dict[str, Any]) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        yield GaugeMetricFamily(
            "agent_sessions_outbox_backlog", "Outbox entries not yet acknowledged by a relay", value=s["backlog"]
        )
        yield GaugeMetricFamily(
            "agent_sessions_outbox_pending", "Outbox entries read by a relay, not yet acknowledged", value=s["pending"]
        )
        yield GaugeMetricFamily("agent_sessions_relay_lag_seconds", "Age of the oldest outbox entry", value=s["lag"])
        yield GaugeMetricFamily(
            "agent_sessions_dead_letters", "Webhook deliveries waiting in the dead letters", value=s["dead"]
        )
        events = CounterMetricFamily(
            "agent_sessions_events", "Events handled by the workers", labels=["actor", "outcome"]
        )
        webhooks = CounterMetricFamily("agent_sessions_webhooks", "Webhook delivery attempts", labels=["outcome"])
        for field, value in sorted(s["counters"].items()):
            group, _, name = field.partition(":")
            if group == "webhooks":
                webhooks.add_metric([name], float(value))
            else:
                events.add_metric([group, name], float(value))
        yield events
        yield webhooks


class Exposition:
    """Everything a scrape returns: the HTTP metrics (this process's, or every API process's from the
    multiprocess directory) and the pipeline's, read from Redis. A Redis outage leaves the pipeline
    metrics out of that scrape rather than failing it."""

    def __init__(self, client: redis.Redis, keys: Keys, multiprocess_dir: str | None) -> None:
        self.client = client
        self.multiprocess_dir = multiprocess_dir
        self.keys = keys

    def collect(self) -> Iterator[Metric]:
        if self.multiprocess_dir:
            registry = CollectorRegistry()
            MultiProcessCollector(registry, self.multiprocess_dir)  # type: ignore[no-untyped-call]
            yield from registry.collect()
        else:
            yield from REGISTRY.collect()
        try:
            snapshot = pipeline_snapshot(self.client, self.keys)
        except OUTAGE_ERRORS:
            return
        yield from PipelineCollector(snapshot).collect()


def check_port(host: str, port: int, setting: str) -> None:
    """``ConfigError`` now when ``host:port`` cannot be listened on (taken, not an address of this
    machine), so a process fails before it starts anything rather than after."""
    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except OSError as exc:
        raise ConfigError(
            f"{setting} {port} on {host} cannot be used ({exc.strerror}); choose another or set {setting}=0"
        ) from None


def serve_metrics(host: str, port: int, client: redis.Redis, keys: Keys, multiprocess_dir: str | None) -> None:
    """Start the metrics listener in a daemon thread of this process."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Exposition(client, keys, multiprocess_dir))
    try:
        start_http_server(port, host, registry=registry)
    except OSError as exc:
        raise ConfigError(
            f"METRICS_PORT {port} on {host} cannot be used ({exc.strerror}); choose another or set METRICS_PORT=0"
        ) from None
