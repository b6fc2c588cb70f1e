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

from agent_sessions.redis.keys import Keys
from agent_sessions.redis.scripts import SyncScript
from agent_sessions.sessions.lua import SESSIONS_REINDEX, RemovalKeys

log = logging.getLogger("agent_sessions.reindex")

INDEXED_VALUE_MAX_BYTES = 128


@dataclass(frozen=True)
class SessionIndexes:
    keys: Keys
    dimensions: tuple[str, ...] = ()
    max_bytes: int = INDEXED_VALUE_MAX_BYTES

    def sort_keys(self, agent: str) -> tuple[str, str, str]:
        """The keys of _index.lua's ``index_of``: the created and updated sort indexes, the expiry index."""
        k = self.keys
        return k.sessions_by(agent, "created"), k.sessions_by(agent, "updated"), k.expiry(k.tag(agent))

    def removal_keys(self, agent: str, session: str) -> RemovalKeys:
        """The KEYS of the scripts that remove one session (session_delete.lua, session_expire.lua)."""
        k = self.keys
        created, updated, expiry = self.sort_keys(agent)
        return {
            "agent": k.agent(agent),
            "session": k.session(agent, session),
            "all_sessions": k.sessions(agent),
            "enabled_index": k.sessions(agent, True),
            "disabled_index": k.sessions(agent, False),
            "outbox": k.outbox(k.tag(agent)),
            "history": k.history(agent, session),
            "history_bytes": k.history_bytes(agent, session),
            "created_index": created,
            "updated_index": updated,
            "expiry_index": expiry,
        }

    def ready_fields(self) -> list[str]:
        """The fields of the ``indexes`` hash that say these indexes are complete."""
        return ["sort", *(f"dim:{dimension}" for dimension in self.dimensions)]

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
        self._script = SyncScript(client, SESSIONS_REINDEX)

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
            created, updated, expiry = self.indexes.sort_keys(agent)
            while True:
                after = cast(
                    str,
                    self._script(
                        {
                            "all_sessions": keys.sessions(agent),
                            "created_index": created,
                            "updated_index": updated,
                            "expiry_index": expiry,
                        },
                        {
                            "session_prefix": keys.session_prefix(agent),
                            "dimension_prefix": keys.dimension_prefix(agent),
                            "dimensions": ",".join(self.indexes.dimensions),
                            "max_bytes": self.indexes.max_bytes,
                            "agent": agent,
                            "after": after,
                            "batch": self.batch,
                        },
                    ),
                )
                if not after:
                    break
            log.info("agent %s: indexed", agent)
        now = str(int(time.time() * 1000))
        for tag in keys.tags():
            self.redis.hset(keys.indexes(tag), mapping=dict.fromkeys(self.indexes.ready_fields(), now))
        return len(agents)
