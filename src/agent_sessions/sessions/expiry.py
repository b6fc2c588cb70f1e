"""Sessions that expire: the workers' sweep of sessions idle longer than their time-to-idle.

A session with ``tti_minutes`` > 0 is in its partition's expiry index (``as:expiry:{t}``, scored by
when it expires, kept by every write script). ``Expirer.step`` reads the due members (Redis ``TIME``, never the
worker's clock) and runs ``lua/session_expire.lua`` for each, one pipeline: each call checks again and
deletes the session with its ``session.expired`` event in one atomic step. So a worker killed
mid-sweep leaves every session either expired (with its event) or still due for the next step, any
number of workers may sweep at once, and a session changed since the read is kept.

Before the sweep reaches it, an expired session is already gone for readers: the update, delete and
find scripts and ``GET`` compare its ``expires_at`` with Redis time.
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from typing import cast

import redis

from agent_sessions.events.model import new_event_id
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.scripts import SyncScript
from agent_sessions.redis.steps import run_steps
from agent_sessions.sessions.indexes import SessionIndexes
from agent_sessions.sessions.lua import SESSION_EXPIRE, SessionExpireArgs

log = logging.getLogger("agent_sessions.expiry")


class Expirer:
    def __init__(self, client: redis.Redis, keys: Keys, batch: int = 100, dimensions: tuple[str, ...] = ()) -> None:
        self.redis = client
        self.batch = batch
        self.keys = keys
        self.indexes = SessionIndexes(keys, dimensions)
        self._script = SyncScript(client, SESSION_EXPIRE)

    def step(self) -> Counter[str]:
        """Expire what is due, at most ``batch`` sessions; returns the outcomes by kind."""
        seconds, micros = self.redis.time()
        now_ms = seconds * 1000 + micros // 1000
        pipe = self.redis.pipeline(transaction=False)
        for tag in self.keys.tags():
            pipe.zrangebyscore(self.keys.expiry(tag), "-inf", now_ms, start=0, num=self.batch, withscores=True)
        # The first ``batch`` due sessions of all partitions, earliest first.
        due_by_time = sorted(
            ((at, member) for due in cast(list[list[tuple[str, float]]], pipe.execute()) for member, at in due)
        )
        due = [member for _, member in due_by_time[: self.batch]]
        calls = []
        for member in due:
            agent, _, session = member.partition("/")
            args: SessionExpireArgs = {
                "agent": agent,
                "session": session,
                "event_id": new_event_id(),
                "dimension_prefix": self.keys.dimension_prefix(agent),
            }
            calls.append(self._script.call(self.indexes.removal_keys(agent, session), args))
        return Counter(cast(list[str], self._script.many(calls))) if calls else Counter()

    def run(self, stop: threading.Event, idle_s: float = 0.5) -> None:
        """Sweep until ``stop`` is set: step after step while there is work, every ``idle_s`` when not."""
        run_steps(self._busy_step, stop, idle_s, "expiry")

    def _busy_step(self) -> bool:
        outcomes = self.step()
        if outcomes["expired"]:
            log.info("expired %d sessions", outcomes["expired"])
        return sum(outcomes.values()) == self.batch
