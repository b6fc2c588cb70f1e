"""Prometheus metrics, served at ``GET /metrics``.

HTTP metrics are kept per API process (prometheus-client; with ``serve --workers N`` in its
multiprocess mode, so any process answers for all of them). Pipeline metrics are the same for every
process, so they are read from Redis when scraped: the outbox backlog and relay lag, and the counters
the workers keep in the ``as:metrics`` hash (events processed and failed per actor, webhook deliveries
and failed attempts, dead letters).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import redis.asyncio as aioredis
from prometheus_client import REGISTRY, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector

from agent_sessions.escalations import DEAD_LETTERS
from agent_sessions.escalations import METRICS as COUNTERS  # "<actor>:processed|failed", "webhooks:…"
from agent_sessions.events import OUTBOX, RELAY_GROUP

REQUESTS = Counter("agent_sessions_http_requests", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "agent_sessions_http_request_duration_seconds",
    "HTTP request duration",
    ["method", "route"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
RATE_LIMITED = Counter("agent_sessions_rate_limited", "Requests refused with 429", ["reason"])


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


async def pipeline_snapshot(client: aioredis.Redis) -> dict[str, Any]:
    pipe = client.pipeline(transaction=False)
    pipe.xlen(OUTBOX)
    pipe.xrange(OUTBOX, count=1)
    pipe.hgetall(COUNTERS)
    pipe.zcard(DEAD_LETTERS)
    backlog, oldest, counters, dead = await pipe.execute()
    try:
        pending = int((await client.xpending(OUTBOX, RELAY_GROUP))["pending"])
    except Exception:  # no stream or group yet
        pending = 0
    lag = max(0.0, time.time() - int(oldest[0][0].split("-")[0]) / 1000) if oldest else 0.0
    return {"backlog": backlog, "pending": pending, "lag": lag, "dead": dead, "counters": counters}


async def render(client: aioredis.Redis, multiprocess: bool) -> bytes:
    if multiprocess:
        registry = CollectorRegistry()
        MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        text = generate_latest(registry)
    else:
        text = generate_latest(REGISTRY)
    pipeline = CollectorRegistry()
    pipeline.register(PipelineCollector(await pipeline_snapshot(client)))
    return text + generate_latest(pipeline)
