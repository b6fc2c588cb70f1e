"""The writing side of reports, used by the reporting actor (synchronous, like Dramatiq actors)."""

from __future__ import annotations

from typing import cast

import redis

from agent_sessions.events.model import EventDict
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.scripts import Call, SyncScript
from agent_sessions.reports.lua import REPORT_APPLY
from agent_sessions.reports.model import Report, dimension_value, report_from_hash

# How long a deleted session's reporter state outlives its last event (late duplicates still dedupe).
DELETED_STATE_TTL = 7 * 24 * 3600


class ReportStore:
    def __init__(
        self,
        client: redis.Redis,
        keys: Keys,
        dimensions: tuple[str, ...],
        max_values: int = 100,
        max_chars: int = 64,
    ) -> None:
        self.redis = client
        self.dimensions = dimensions
        self.max_values = max_values
        self.max_chars = max_chars
        self.keys = keys
        self._apply = SyncScript(client, REPORT_APPLY)

    def apply(self, event: EventDict) -> bool:
        """Count ``event``; False when it was already counted (a redelivery)."""
        return self.apply_all([event]) == 1

    def apply_all(self, events: list[EventDict]) -> int:
        """Count a batch (each event exactly once); returns how many were new. One round trip: each
        event is its own script call, atomic on its own, sent together in one pipeline (no MULTI).
        Re-sending the batch (Redis forgot the script, or the actor is retried) counts nothing twice."""
        if not events:
            return 0
        replies = self._apply.many([self._call(event) for event in events])
        return sum(reply == "applied" for reply in replies)

    def _call(self, event: EventDict) -> Call:
        agent, session = event["agent_key"], event["session_key"]
        incarnation = f"{agent}:{session}:{event['incarnation']}"
        metadata, values = event["session"]["metadata"], list[str]()
        for dimension in self.dimensions:
            value = dimension_value(metadata, dimension, self.max_chars)
            values += (dimension, "" if value is None else "=" + value)
        return self._apply.call(
            {
                "report": self.keys.report(agent),
                "state": self.keys.report_state(agent, incarnation),
                "out_of_order": self.keys.report_out_of_order(agent, incarnation),
            },
            {
                "type": event["type"],
                "version": event["version"],
                "enabled": "1" if event["session"]["enabled"] else "0",
                "deleted_ttl": DELETED_STATE_TTL,
                "max_values": self.max_values,
            },
            more_args=values,
        )

    def read(self, agent: str) -> Report:
        fields = cast(dict[str, str], self.redis.hgetall(self.keys.report(agent)))
        return report_from_hash(agent, fields, self.dimensions)
