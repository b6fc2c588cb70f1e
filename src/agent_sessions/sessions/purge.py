"""The purge of deleted agents' sessions: the background half of ``DELETE /v2/agents/{agent_key}``.

Deleting an agent takes one short script (``lua/agent_delete.lua``): the agent is gone for every reader
at once, and its sessions wait in a purge set. The workers run ``Purger``: each step removes at most
``AGENT_DELETE_BATCH`` sessions per agent in one script call (``lua/agent_purge.lua``), each with its
``session.deleted`` event, so no single Redis call grows with the size of an agent and other requests
are served between steps. Any number of workers may purge at once: each session is popped by one step.
"""

from __future__ import annotations

import logging
import threading
from typing import cast

import redis

from agent_sessions.events.model import new_event_id
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.scripts import SyncScript
from agent_sessions.redis.steps import run_steps
from agent_sessions.sessions.indexes import SessionIndexes
from agent_sessions.sessions.lua import AGENT_PURGE

log = logging.getLogger("agent_sessions.purge")


class Purger:
    def __init__(self, client: redis.Redis, keys: Keys, batch: int = 100, dimensions: tuple[str, ...] = ()) -> None:
        self.redis = client
        self.batch = batch
        self.keys = keys
        self.indexes = SessionIndexes(keys, dimensions)
        self._script = SyncScript(client, AGENT_PURGE)

    def step(self) -> int:
        """One step for every agent being purged; returns how many sessions it deleted."""
        deleted = 0
        for agent in self._purging():
            tag = self.keys.tag(agent)
            created, updated, expiry = self.indexes.sort_keys(agent)
            done, left = cast(
                list[int],
                self._script(
                    {
                        "purge": self.keys.purge(agent),
                        "purges": self.keys.purges(tag),
                        "outbox": self.keys.outbox(tag),
                        "created_index": created,
                        "updated_index": updated,
                        "expiry_index": expiry,
                    },
                    {
                        "agent": agent,
                        "batch": self.batch,
                        "session_prefix": self.keys.session_prefix(agent),
                        "history_prefix": self.keys.history_prefix(agent),
                        "event_id_prefix": new_event_id(),
                        "dimension_prefix": self.keys.dimension_prefix(agent),
                    },
                ),
            )
            deleted += done
            if left == 0:
                log.info("agent %s: its sessions are all deleted", agent)
        return deleted

    def _purging(self) -> list[str]:
        """The agents being purged, from every partition's list (one round trip)."""
        pipe = self.redis.pipeline(transaction=False)
        for tag in self.keys.tags():
            pipe.hkeys(self.keys.purges(tag))
        return [agent for agents in cast(list[list[str]], pipe.execute()) for agent in agents]

    def run(self, stop: threading.Event, idle_s: float = 0.5) -> None:
        """Purge until ``stop`` is set; between steps while there is work, after ``idle_s`` when not."""
        run_steps(lambda: self.step() > 0, stop, idle_s, "purge")
