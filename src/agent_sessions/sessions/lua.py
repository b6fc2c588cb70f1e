"""The Lua scripts of sessions: each one's KEYS and ARGV, by name and in order (``redis.scripts.declare``;
the script's header says the same)."""

from __future__ import annotations

from typing_extensions import TypedDict

from agent_sessions.redis.scripts import Arg, NoArgs, declare


class AgentCreateKeys(TypedDict):
    agent: str
    agents: str
    purge: str
    ready: str
    purges: str


class AgentCreateArgs(TypedDict):
    agent: Arg
    name: Arg
    description: Arg
    metadata: Arg
    enabled: Arg
    default_tti: Arg


AGENT_CREATE = declare("agent_create", AgentCreateKeys, AgentCreateArgs, more_args="ready_fields")


class AgentUpdateKeys(TypedDict):
    agent: str


AGENT_UPDATE = declare("agent_update", AgentUpdateKeys, NoArgs, more_args="changes")


class AgentDeleteKeys(TypedDict):
    agent: str
    agents: str
    all_sessions: str
    enabled_index: str
    disabled_index: str
    purge: str
    purges: str
    created_index: str
    updated_index: str
    rules: str


class AgentDeleteArgs(TypedDict):
    agent: Arg
    actor: Arg
    request_id: Arg


AGENT_DELETE = declare("agent_delete", AgentDeleteKeys, AgentDeleteArgs)


class AgentPurgeKeys(TypedDict):
    purge: str
    purges: str
    outbox: str
    created_index: str
    updated_index: str
    expiry_index: str


class AgentPurgeArgs(TypedDict):
    agent: Arg
    batch: Arg
    session_prefix: Arg
    history_prefix: Arg
    event_id_prefix: Arg
    dimension_prefix: Arg


AGENT_PURGE = declare("agent_purge", AgentPurgeKeys, AgentPurgeArgs)


class SessionKeys(TypedDict):
    """The keys of one session and of the agent's indexes it is in, first in every script that writes
    a session's whole life (create, delete, expire)."""

    agent: str
    session: str
    all_sessions: str
    enabled_index: str
    disabled_index: str
    outbox: str
    history: str
    history_bytes: str


class SessionCreateKeys(SessionKeys):
    idem_record: str
    idem_index: str
    created_index: str
    updated_index: str
    expiry_index: str


class SessionCreateArgs(TypedDict):
    agent: Arg
    session: Arg
    event_id: Arg
    actor: Arg
    request_id: Arg
    name: Arg
    description: Arg
    metadata: Arg
    enabled: Arg
    idem_fingerprint: Arg
    idem_ttl: Arg
    idem_max: Arg
    idem_snapshots: Arg
    history_max: Arg
    history_max_bytes: Arg
    dimension_prefix: Arg
    indexed: Arg
    tti_minutes: Arg


SESSION_CREATE = declare("session_create", SessionCreateKeys, SessionCreateArgs)


class SessionUpdateKeys(TypedDict):
    agent: str
    session: str
    enabled_index: str
    disabled_index: str
    outbox: str
    history: str
    history_bytes: str
    idem_record: str
    idem_index: str
    updated_index: str
    expiry_index: str
    key_record: str
    key_bucket: str


class SessionUpdateArgs(TypedDict):
    agent: Arg
    session: Arg
    event_id: Arg
    actor: Arg
    request_id: Arg
    if_match: Arg
    idem_fingerprint: Arg
    idem_ttl: Arg
    idem_max: Arg
    idem_snapshots: Arg
    history_max: Arg
    history_max_bytes: Arg
    default_rate: Arg
    default_burst: Arg
    dimension_prefix: Arg
    indexed: Arg


SESSION_UPDATE = declare("session_update", SessionUpdateKeys, SessionUpdateArgs, more_args="changes")


class RemovalKeys(SessionKeys):
    """The KEYS of the scripts that remove one session (``lua/_remove.lua``)."""

    created_index: str
    updated_index: str
    expiry_index: str


class SessionDeleteArgs(TypedDict):
    agent: Arg
    session: Arg
    event_id: Arg
    actor: Arg
    request_id: Arg
    dimension_prefix: Arg


SESSION_DELETE = declare("session_delete", RemovalKeys, SessionDeleteArgs)


class SessionGetKeys(TypedDict):
    agent: str
    session: str


SESSION_GET = declare("session_get", SessionGetKeys, NoArgs)


class SessionExpireArgs(TypedDict):
    agent: Arg
    session: Arg
    event_id: Arg
    dimension_prefix: Arg


SESSION_EXPIRE = declare("session_expire", RemovalKeys, SessionExpireArgs)


class SessionsFindKeys(TypedDict):
    agent: str
    base: str
    ready: str
    expiry: str


class SessionsFindArgs(TypedDict):
    session_prefix: Arg
    order: Arg
    after_score: Arg
    after_member: Arg
    limit: Arg
    budget: Arg
    program: Arg
    enabled: Arg
    group_sizes: Arg
    exact: Arg
    group_dimensions: Arg
    agent: Arg


SESSIONS_FIND = declare("sessions_find", SessionsFindKeys, SessionsFindArgs, more_keys="index_keys")


class SessionsReindexKeys(TypedDict):
    all_sessions: str
    created_index: str
    updated_index: str
    expiry_index: str


class SessionsReindexArgs(TypedDict):
    session_prefix: Arg
    dimension_prefix: Arg
    dimensions: Arg
    max_bytes: Arg
    agent: Arg
    after: Arg
    batch: Arg


SESSIONS_REINDEX = declare("sessions_reindex", SessionsReindexKeys, SessionsReindexArgs)


class HistoryPageKeys(TypedDict):
    agent: str
    session: str
    history: str


class HistoryPageArgs(TypedDict):
    below: Arg
    limit: Arg


HISTORY_PAGE = declare("history_page", HistoryPageKeys, HistoryPageArgs)
