"""The wheel ships the Lua scripts (the service cannot run without them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from agent_sessions.redis.scripts import NAMES, _used, lua

ROOT = Path(__file__).resolve().parents[2]


def test_wheel_contains_every_lua_script(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(ROOT)],
        check=True,
    )
    wheel = next(tmp_path.glob("agent_sessions-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    sources = {p.name for p in (ROOT / "src/agent_sessions/redis/lua").glob("*.lua")}
    assert set(NAMES) <= {name.removesuffix(".lua") for name in sources}
    for name in sources:
        assert f"agent_sessions/redis/lua/{name}" in names


def test_every_script_in_the_registry_loads_with_its_preludes() -> None:
    for name in NAMES:
        source = lua(name).source
        assert "KEYS" in source or "ARGV" in source, name


def test_a_script_gets_the_prelude_functions_it_uses_and_no_others() -> None:
    preludes = (
        "-- shared\nlocal SHARED = 1\n"
        "local function leaf(x)\n  return x\nend\n"
        "local function used(x)\n  return leaf(x) + SHARED\nend\n"
        "local function unused(x)\n  return used(x)\nend\n"
    )
    kept = _used(preludes, "return used(1)\n")
    assert "local function leaf(" in kept and "local function used(" in kept  # and what it calls
    assert "unused" not in kept
    assert kept.index("function leaf") < kept.index("function used")  # in their order: a local is seen after it
    assert "local SHARED = 1" in kept and "-- shared" in kept


def test_the_update_script_carries_no_function_it_never_calls() -> None:
    source = lua("session_update").source
    for never_called in ("charge_failure", "unplace", "ix_of", "bytes_before"):
        assert f"local function {never_called}(" not in source
    for called in ("admit", "take_token", "emit_event", "record_history", "idem_store", "place", "reindex"):
        assert f"local function {called}(" in source
