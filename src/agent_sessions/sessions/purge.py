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

from agent_sessions.events import new_event_id
from agent_sessions.redis.indexes import SessionIndexes
from agent_sessions.redis.keys import KEYS, Keys
from agent_sessions.redis.scripts import SyncScript
from agent_sessions.redis.steps import run_steps

log = logging.getLogger("agent_sessions.purge")


class Purger:
    def __init__(
        self, client: redis.Redis, batch: int = 100, keys: Keys = KEYS, dimensions: tuple[str, ...] = ()
    ) -> None:
        self.redis = client
        self.batch = batch
        self.keys = keys
        self.indexes = SessionIndexes(dimensions, keys=keys)
        self._script = SyncScript(client, "agent_purge")

    def step(self) -> int:
        """One step for every agent being purged; returns how many sessions it deleted."""
        deleted = 0
        for agent in self._purging():
            done, left = cast(
                list[int],
                self._script(
                    [
                        self.keys.purge(agent),
                        self.keys.purges(self.keys.tag(agent)),
                        self.keys.outbox(self.keys.tag(agent)),
                        *self.indexes.script_keys(agent),
                    ],
                    [
                        agent,
                        self.batch,
                        self.keys.session_prefix(agent),
                        self.keys.history_prefix(agent),
                        new_event_id(),
                        *self.indexes.script_args(agent),
                    ],
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
