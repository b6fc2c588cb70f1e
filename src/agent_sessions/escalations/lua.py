"""The Lua scripts of escalations: each one's KEYS and ARGV, by name and in order (``redis.scripts.declare``;
the script's header says the same)."""

from __future__ import annotations

from typing_extensions import TypedDict

from agent_sessions.redis.scripts import Arg, declare


class EscalationRecordKeys(TypedDict):
    escalation: str
    report: str
    outbox: str


class EscalationRecordArgs(TypedDict):
    event_id: Arg
    agent: Arg
    session: Arg
    rules: Arg
    body: Arg
    keep_ms: Arg
    escalation_id: Arg
    version: Arg
    actor: Arg
    request_id: Arg


ESCALATION_RECORD = declare("escalation_record", EscalationRecordKeys, EscalationRecordArgs)
