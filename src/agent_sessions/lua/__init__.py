"""Lua sources of every script the service runs. Each file's header names its KEYS, ARGV and layout.

A script whose first line is ``-- prelude: NAME [NAME…]`` gets those files prepended: ``_change.lua``
(the event and history writers every session change uses) and ``_idempotency.lua`` (stored results
for Idempotency-Key), so each is written once.
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
        text = "".join(_read(name) for name in first.removeprefix(PRELUDE_MARK).split()) + text
    return text
