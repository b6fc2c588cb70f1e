"""Lua sources of every script the service runs. Each file's header names its KEYS, ARGV and layout."""

from __future__ import annotations

from importlib.resources import files


def source(name: str) -> str:
    return (files(__package__) / f"{name}.lua").read_text(encoding="utf-8")
