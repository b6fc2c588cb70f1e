"""What the session scripts need to keep a session's indexes (``lua/_index.lua``): the sort indexes,
the report dimensions' value indexes and the expiry index.

A dimension index holds the sessions whose ``metadata.<dimension>`` is a string of at most
``max_bytes`` UTF-8 bytes; longer values are not indexed (a filter naming one scans instead). So one
session is in at most one index per dimension, and an agent's dimension indexes hold at most
``sessions x dimensions`` entries. A session's indexed values are also kept in its hash (``ix``,
made here by ``indexed``), so the update script compares two strings instead of parsing metadata.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis

from agent_sessions.redis.keys import KEYS, Keys
from agent_sessions.redis.scripts import SyncScript

log = logging.getLogger("agent_sessions.reindex")

INDEXED_VALUE_MAX_BYTES = 128


@dataclass(frozen=True)
class SessionIndexes:
    dimensions: tuple[str, ...] = ()
    max_bytes: int = INDEXED_VALUE_MAX_BYTES
    keys: Keys = KEYS

    def script_keys(self, agent: str) -> list[str]:
        """KEYS of _index.lua's ``index_of``: created and updated sort indexes, the expiry index."""
        k = self.keys
        return [k.sessions_by(agent, "created"), k.sessions_by(agent, "updated"), k.expiry(k.tag(agent))]

    def removal_keys(self, agent: str, session: str) -> list[str]:
        """KEYS of the scripts that remove one session (session_delete.lua, session_expire.lua), in
        the order lua/_remove.lua reads them."""
        k = self.keys
        return [
            k.agent(agent),
            k.session(agent, session),
            *k.session_indexes(agent),
            k.outbox(k.tag(agent)),
            k.history(agent, session),
            k.history_bytes(agent, session),
            *self.script_keys(agent),
        ]

    def ready_fields(self) -> list[str]:
        """The fields of the ``indexes`` hash that say these indexes are complete."""
        return ["sort", *(f"dim:{dimension}" for dimension in self.dimensions)]

    def script_args(self, agent: str) -> list[str]:
        """ARGV of ``index_of``: the dimension index prefix."""
        return [self.keys.dimension_prefix(agent)]

    def indexed(self, metadata: dict[str, Any]) -> str:
        """A session's indexed values (its hash's ``ix``): JSON of the dimensions whose value is a short
        enough string, keys sorted; "" for none."""
        values = {}
        for dimension in self.dimensions:
            value = metadata.get(dimension)
            if isinstance(value, str) and len(value.encode()) <= self.max_bytes:
                values[dimension] = value
        return orjson.dumps(values, option=orjson.OPT_SORT_KEYS).decode() if values else ""


class Reindexer:
    """``agent-sessions reindex``: (re)build the indexes of every session, then mark them complete.

    Needed once on a store written by a version without these indexes, and after REPORT_DIMENSIONS
    changes; run it once every process runs the new version and settings. Until an index is marked
    complete, the API does not use it: a filter on that dimension scans, and a time sort answers 503
    ``index_not_ready``. The old dimension indexes are dropped first (values written while a dimension
    was not configured were never removed from them). Each step is one script over ``batch`` sessions,
    so the API keeps serving; a reindex stopped halfway is simply run again.
    """

    def __init__(self, client: redis.Redis, indexes: SessionIndexes, batch: int = 500) -> None:
        self.redis = client
        self.indexes = indexes
        self.batch = batch
        self._script = SyncScript(client, "sessions_reindex")

    def run(self) -> int:
        """Returns how many agents were reindexed."""
        keys = self.indexes.keys
        agents = []
        for tag in keys.tags():
            stale = [f for f in cast(list[str], self.redis.hkeys(keys.indexes(tag))) if f.startswith("dim:")]
            if stale:
                self.redis.hdel(keys.indexes(tag), *stale)
            agents += cast(list[str], self.redis.zrange(keys.agents(tag), 0, -1))
        for agent in agents:
            for key in self.redis.scan_iter(match=keys.dimension_prefix(agent) + "*", count=1000):
                self.redis.unlink(key)
            after = ""
            while True:
                after = cast(
                    str,
                    self._script(
                        [keys.sessions(agent), *self.indexes.script_keys(agent)],
                        [
                            keys.session_prefix(agent),
                            *self.indexes.script_args(agent),
                            ",".join(self.indexes.dimensions),
                            self.indexes.max_bytes,
                            agent,
                            after,
                            self.batch,
                        ],
                    ),
                )
                if not after:
                    break
            log.info("agent %s: indexed", agent)
        now = str(int(time.time() * 1000))
        for tag in keys.tags():
            self.redis.hset(keys.indexes(tag), mapping=dict.fromkeys(self.indexes.ready_fields(), now))
        return len(agents)
