"""Lua sources of every script the service runs. Each file's header names its KEYS, ARGV and layout.

Scripts that change a session start with ``-- prelude: _outbox`` and get ``_outbox.lua`` (the event
emitter shared by all of them) prepended, so the outbox format is written once.
"""

from __future__ import annotations

from importlib.resources import files

PRELUDE_MARK = "-- prelude: "


def _read(name: str) -> str:
    return (files(__package__) / f"{name}.lua").read_text(encoding="utf-8")


def source(name: str) -> str:
    text = _read(name)
    first = text.split("\n", 1)[0]
    if first.startswith(PRELUDE_MARK):
        text = _read(first.removeprefix(PRELUDE_MARK).strip()) + text
    return text
