"""What the session scripts need to keep a session's indexes (``lua/_index.lua``): the sort indexes,
the report dimensions' value indexes and the expiry index.

A dimension index holds the sessions whose ``metadata.<dimension>`` is a string of at most
``max_bytes`` UTF-8 bytes; longer values are not indexed (a filter naming one scans instead). So one
session is in at most one index per dimension, and an agent's dimension indexes hold at most
``sessions x dimensions`` entries.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_sessions.redis.keys import KEYS, Keys

INDEXED_VALUE_MAX_BYTES = 128


@dataclass(frozen=True)
class SessionIndexes:
    dimensions: tuple[str, ...] = ()
    max_bytes: int = INDEXED_VALUE_MAX_BYTES
    keys: Keys = KEYS

    def script_keys(self, agent: str) -> list[str]:
        """KEYS of _index.lua's ``index_of``: created and updated sort indexes, the expiry index."""
        return [self.keys.sessions_by(agent, "created"), self.keys.sessions_by(agent, "updated"), self.keys.expiry]

    def script_args(self, agent: str) -> list[str | int]:
        """ARGV of ``index_of``: the dimension index prefix, the dimensions, the value bound."""
        return [self.keys.dimension_prefix(agent), ",".join(self.dimensions), self.max_bytes]
