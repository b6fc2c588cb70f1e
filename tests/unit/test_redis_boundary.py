"""The check `make lint` runs: nothing outside agent_sessions.redis spells a key or runs a script."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[2]


def load_check() -> ModuleType:
    spec = importlib.util.spec_from_file_location("check_redis_boundary", ROOT / "tools/check_redis_boundary.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_tree_keeps_redis_in_its_package() -> None:
    assert load_check().main() == 0


def test_the_check_finds_key_literals_and_script_calls(tmp_path: Path) -> None:
    check = load_check()
    probe = tmp_path / "probe.py"
    probe.write_text('a = f"as:session:{x}"\nb = "as:outbox"\nc.evalsha("x", 0)\nd = c.register_script(s)\ne = "ok"\n')
    setattr(check, "ROOT", tmp_path)  # noqa: B010  (places are named relative to ROOT)
    found = check.violations(probe)
    assert [line.split(":")[1] for line in found] == ["1", "2", "3", "4"]
