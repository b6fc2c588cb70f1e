"""What the actors of one worker process use, opened once per process (``worker.middleware.Lifecycle``)
and handed to each actor (``actors.declare``)."""

from __future__ import annotations

import time

import redis

from agent_sessions import rules
from agent_sessions.config import Settings
from agent_sessions.endpoints import SETTINGS_SUBSCRIPTION, Subscription, subscription
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.escalations import EscalationStore
from agent_sessions.redis.outbox import Counters
from agent_sessions.redis.reports import ReportStore
from agent_sessions.redis.webhooks import Bounds, Fanout

REFRESH_S = 1.0  # how often the webhook endpoints are read again


class Worker:
    """The actors' dependencies. ``settings`` may be replaced before ``open`` (tests do)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: redis.Redis | None = None
        self.reports: ReportStore
        self.escalations: EscalationStore
        self.counters: Counters
        self.fanout: Fanout
        self._subscriptions: list[Subscription] = []
        self._subscriptions_read = -REFRESH_S

    @property
    def default_rules(self) -> rules.Rules:
        return rules.defaults(self.settings.escalate_when_becomes, self.settings.escalate_when_changes)

    def subscriptions(self) -> list[Subscription]:
        """The webhook endpoints (read again at most every ``REFRESH_S``), and ESCALATION_WEBHOOK_URL's."""
        if time.monotonic() - self._subscriptions_read >= REFRESH_S:
            found = [subscription(e, fields) for e, fields in self.fanout.endpoints()]
            if self.settings.escalation_webhook_url is not None:
                found.append(SETTINGS_SUBSCRIPTION)
            self._subscriptions, self._subscriptions_read = found, time.monotonic()
        return self._subscriptions

    def open(self) -> Worker:
        if self._redis is None:
            s = self.settings
            self._redis = sync_client(s.required_redis_url("the workers"), timeout=s.redis_timeout * 5)
            self.reports = ReportStore(self._redis, s.report_dimensions, s.report_max_values, s.report_value_max_chars)
            self.escalations = EscalationStore(self._redis)
            self.counters = Counters(self._redis)
            self.fanout = Fanout(self._redis, Bounds(s.webhook_backlog_max, s.webhook_log_max, s.webhook_endpoints_max))
        return self

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
