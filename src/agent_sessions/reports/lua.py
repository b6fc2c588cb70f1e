"""The Lua scripts of reports: each one's KEYS and ARGV, by name and in order (``redis.scripts.declare``;
the script's header says the same)."""

from __future__ import annotations

from typing_extensions import TypedDict

from agent_sessions.redis.scripts import Arg, declare


class ReportApplyKeys(TypedDict):
    report: str
    state: str
    out_of_order: str


class ReportApplyArgs(TypedDict):
    type: Arg
    version: Arg
    enabled: Arg
    deleted_ttl: Arg
    max_values: Arg


REPORT_APPLY = declare("report_apply", ReportApplyKeys, ReportApplyArgs, more_args="dimension_values")
