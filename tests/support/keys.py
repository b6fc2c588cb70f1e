"""The keys of a store made with the default settings (no KEY_PREFIX, the default partitions): what
most tests' servers use. The service itself has no such default: its keys come from the bootstrap."""

from __future__ import annotations

from agent_sessions.redis.keys import Keys

KEYS = Keys()
