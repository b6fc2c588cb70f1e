"""The Lua scripts of access: each one's KEYS and ARGV, by name and in order (``redis.scripts.declare``;
the script's header says the same)."""

from __future__ import annotations

from typing_extensions import TypedDict

from agent_sessions.redis.scripts import Arg, declare


class GateKeys(TypedDict):
    key_record: str
    key_bucket: str


class GateArgs(TypedDict):
    default_rate: Arg
    default_burst: Arg


GATE = declare("gate", GateKeys, GateArgs)


class AuthFailureKeys(TypedDict):
    address_bucket: str


class AuthFailureArgs(TypedDict):
    failure_rate: Arg
    failure_burst: Arg
    verdict: Arg


AUTH_FAILURE = declare("auth_failure", AuthFailureKeys, AuthFailureArgs)
