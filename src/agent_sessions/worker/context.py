"""What the actors of one worker process use, opened once per process (``worker.middleware.Lifecycle``)
and handed to each actor (``actors.declare``)."""

from __future__ import annotations

import redis

from agent_sessions import rules
from agent_sessions.config import Settings
from agent_sessions.endpoints import SETTINGS_SUBSCRIPTION
from agent_sessions.redis.acks import ReplicaAcks
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.escalations import EscalationStore
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.outbox import Counters
from agent_sessions.redis.reports import ReportStore
from agent_sessions.redis.webhooks import Bounds, Fanout


class Worker:
    """The actors' dependencies. ``settings`` may be replaced before ``open`` (tests do)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._redis: redis.Redis | None = None
        self.reports: ReportStore
        self.escalations: EscalationStore
        self.counters: Counters
        self.fanout: Fanout

    @property
    def default_rules(self) -> rules.Rules:
        return rules.defaults(self.settings.escalate_when_becomes, self.settings.escalate_when_changes)

    def open(self) -> Worker:
        if self._redis is None:
            s = self.settings
            url = s.required_redis_url("the workers")
            self._redis = sync_client(url, timeout=s.redis_timeout * 5, acks=ReplicaAcks.of(s))
            keys = Keys.of(s)
            self.reports = ReportStore(
                self._redis, s.report_dimensions, s.report_max_values, s.report_value_max_chars, keys
            )
            self.escalations = EscalationStore(self._redis, s.events_retention, keys)
            self.counters = Counters(self._redis)
            fixed = [SETTINGS_SUBSCRIPTION] if s.escalation_webhook_url is not None else []
            self.fanout = Fanout(self._redis, Bounds.of(s), keys, fixed)
        return self

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None
