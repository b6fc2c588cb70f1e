"""What the actors of one worker process use, opened once per process (``worker.middleware.Lifecycle``)
and handed to each actor (``actors.declare``). What it opens is built by the bootstrap
(``bootstrap.actor_graph``), which gives ``Worker`` the function that builds it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import redis

from agent_sessions.config import Settings
from agent_sessions.escalations import rules
from agent_sessions.escalations.store import EscalationStore
from agent_sessions.events.outbox import Counters
from agent_sessions.reports.store import ReportStore
from agent_sessions.webhooks.store import Fanout


@dataclass(frozen=True)
class ActorGraph:
    """One worker process's Redis client and what the actors reach Redis through."""

    client: redis.Redis
    reports: ReportStore
    escalations: EscalationStore
    counters: Counters
    fanout: Fanout
    default_rules: rules.Rules  # the settings' (ESCALATE_WHEN_*), for agents without rules of their own


class Worker:
    """The actors' dependencies, opened on first use. ``settings`` may be replaced while it is closed
    (tests do)."""

    def __init__(self, settings: Settings, build: Callable[[Settings], ActorGraph]) -> None:
        self.settings = settings
        self.build = build
        self._graph: ActorGraph | None = None

    def open(self) -> ActorGraph:
        if self._graph is None:
            self._graph = self.build(self.settings)
        return self._graph

    def close(self) -> None:
        if self._graph is not None:
            self._graph.client.close()
            self._graph = None
