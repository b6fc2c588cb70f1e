"""The wheel ships the Lua scripts (the service cannot run without them)."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from agent_sessions.redis.scripts import NAMES, lua

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
