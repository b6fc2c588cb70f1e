"""Every Lua script's KEYS and ARGV are declared once, by name (``redis.scripts.declare``, in each
feature's ``lua.py``), and its header says the same names in the same order:

    -- KEYS: agent, session, ...,
    --       key_bucket
    -- ARGV: agent, ..., changes...

(a name ending in ``...`` is the variable tail: ``more_keys`` / ``more_args``; a script that takes
none says ``(none)``)."""

from __future__ import annotations

import importlib
import pkgutil
import re
from typing import Any

import pytest
from typing_extensions import TypedDict

import agent_sessions
from agent_sessions.redis.scripts import DECLARED, NAMES, Declared, _read, declare

HEADER = re.compile(r"^-- (KEYS|ARGV): (.*)$")
CONTINUED = re.compile(r"^--\s{2,}([a-z_][a-z_., ]*)$")
NAME = re.compile(r"[a-z_][a-z0-9_]*(\.\.\.)?")


def load_declarations() -> None:
    """Import every feature's ``lua`` module (where scripts are declared)."""
    for module in pkgutil.walk_packages(agent_sessions.__path__, "agent_sessions."):
        if module.name.endswith(".lua") and module.ispkg is False:
            importlib.import_module(module.name)


def header(text: str) -> dict[str, list[str]]:
    """The names a script's header gives its KEYS and ARGV, in order."""
    found: dict[str, str] = {}
    label = None
    for line in text.splitlines():
        if m := HEADER.match(line):
            label = m.group(1)
            assert label not in found, f"two {label} headers"
            found[label] = "" if m.group(2) == "(none)" else m.group(2)
        elif label and found[label].rstrip().endswith(",") and (m := CONTINUED.match(line)):
            found[label] += " " + m.group(1)  # a line ending with a comma goes on on the next
        else:
            label = None
    return {label: [n.strip() for n in names.split(",") if n.strip()] for label, names in found.items()}


def expected(declared: Declared[Any, Any]) -> dict[str, list[str]]:
    keys = [*declared.key_names, *([declared.more_keys + "..."] if declared.more_keys else [])]
    args = [*declared.arg_names, *([declared.more_args + "..."] if declared.more_args else [])]
    return {"KEYS": keys, "ARGV": args}


def test_every_script_is_declared_once_and_nothing_else_is() -> None:
    load_declarations()
    assert sorted(DECLARED) == sorted(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_the_header_names_what_the_declaration_names_in_order(name: str) -> None:
    load_declarations()
    said = header(_read(name))
    assert set(said) == {"KEYS", "ARGV"}, f"{name}.lua has no '-- KEYS:' and '-- ARGV:' header"
    assert said == expected(DECLARED[name])
    for names in said.values():
        assert all(NAME.fullmatch(n) for n in names) and len(set(names)) == len(names)


def test_the_header_parser_reads_wrapped_lines_and_tails() -> None:
    text = "-- x\n-- KEYS: a, b,\n--       c\n-- ARGV: d, rest...\n\nlocal a = KEYS[1]\n"
    assert header(text) == {"KEYS": ["a", "b", "c"], "ARGV": ["d", "rest..."]}


def test_a_second_declaration_or_an_unknown_script_is_refused() -> None:
    class One(TypedDict):
        one: str

    load_declarations()
    with pytest.raises(ValueError):
        declare("session_update", One, One)
    with pytest.raises(ValueError):
        declare("no_such_script", One, One)


def test_a_call_puts_the_names_in_the_declared_order() -> None:
    class Keys(TypedDict):
        b: str
        a: str

    class Args(TypedDict):
        y: str
        x: str

    declared = Declared("probe", Keys, Args, more_args="rest")
    assert declared.positions({"a": "A", "b": "B"}, {"x": "X", "y": "Y"}, more_args=["r1", "r2"]) == (
        ["B", "A"],
        ["Y", "X", "r1", "r2"],
    )
