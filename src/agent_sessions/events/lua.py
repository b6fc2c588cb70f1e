"""The Lua scripts of events: each one's KEYS and ARGV, by name and in order (``redis.scripts.declare``;
the script's header says the same)."""

from __future__ import annotations

from typing_extensions import TypedDict

from agent_sessions.redis.scripts import Arg, NoArgs, declare


class EventsPageKeys(TypedDict):
    log: str
    trimmed: str


class EventsPageArgs(TypedDict):
    after: Arg
    limit: Arg
    scan_max: Arg
    agents: Arg
    session: Arg
    types: Arg
    chunk: Arg


EVENTS_PAGE = declare("events_page", EventsPageKeys, EventsPageArgs)


class EventsAppendKeys(TypedDict):
    log: str
    ids: str


EVENTS_APPEND = declare("events_append", EventsAppendKeys, NoArgs, more_args="entries")


class EventsTrimKeys(TypedDict):
    log: str
    ids: str
    trimmed: str


class EventsTrimArgs(TypedDict):
    cutoff_ms: Arg
    max_events: Arg
    batch: Arg


EVENTS_TRIM = declare("events_trim", EventsTrimKeys, EventsTrimArgs)


class RelayLeaseKeys(TypedDict):
    lease: str


class RelayLeaseArgs(TypedDict):
    op: Arg
    relay: Arg
    lease_ms: Arg


RELAY_LEASE = declare("relay_lease", RelayLeaseKeys, RelayLeaseArgs)
