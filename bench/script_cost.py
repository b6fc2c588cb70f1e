"""Where the update script's Redis time goes: the PATCH's script call, cut short at each of its steps.

A real PATCH of the seed's example body is made through the app on a private Redis (AOF on, as in
``make bench``), and its script call (KEYS and ARGV) is taken as it was sent. That call is then sent
again and again, pipelined 32 at a time, with the metadata changing every time (every call is a real
change), to the whole script and to copies of it that return early at one step; the difference between
two neighbours is what that step costs. Copies alternate in every cycle (so a machine whose speed drifts
moves them alike) and each figure is the median of the cycles: the microseconds Redis counts in the
command (``INFO commandstats``) and the server process's CPU (which adds reading the call, writing the
answer and the append-only file).

    .venv/bin/python bench/script_cost.py [--calls 3000] [--cycles 5] [--before DIR] [--redis-server PATH]

``--before DIR``: also the whole script of another checkout (a ``git worktree`` of the code before a
change), sent the same call in the same cycles: a change to the script measured side by side.

Nothing else runs meanwhile, so the figures are lower than ``make bench``'s, where the API and wrk share
the machine's cores with Redis. A step the script no longer has fails loudly (its marker is not found).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import psutil
import redis
from run import AGENT, HERE, OUTBOXES, REDIS_SERVER_HELP, SESSION, describe_redis, seed, settle_aof

from agent_sessions.config import Settings
from agent_sessions.redis import scripts
from agent_sessions.redis.server import RedisServer

BATCH = 32
STOP = "if true then return {'stopped'} end\n"
# (what the script has done when it stops, the line it stops before); in the script's order
STEPS = (
    ("the call: KEYS and ARGV, the shared Lua's functions", "local agent_hash, session_hash"),
    ("... and the script's own set-up", "local admitted = admitting and admit("),
    ("... and the gate (key record, token bucket)", "local function answer(reply)"),
    ("... and reading the session (TIME, HGETALL, EXISTS)", "local at = {}"),
    ("... and If-Match, what changed, the write (HSET)", "-- The session after the write"),
    ("... and the indexes", "emit_event(outbox"),
    ("... and the event in the outbox (XADD)", "record_history(history"),
    ("... and the history entry", "return answer(finish('ok', session_fields))"),
)


def stopped_at(source: str, marker: str) -> str:
    lines = source.splitlines(keepends=True)
    found = [i for i, line in enumerate(lines) if line.startswith(marker)]
    if len(found) != 1:
        raise SystemExit(f"the update script has changed: {marker!r} found {len(found)} times, not once")
    return "".join([*lines[: found[0]], STOP, *lines[found[0] :]])


def captured_call(url: str, key: str) -> tuple[list[Any], list[Any]]:
    """The KEYS and ARGV of a real PATCH's update script call (on a store made by ``run.seed``)."""
    from starlette.testclient import TestClient

    from agent_sessions.web.app import create_app

    calls: list[tuple[list[Any], list[Any]]] = []
    positional = scripts.Script.positional

    async def recording(self: scripts.Script[Any, Any], keys: Sequence[Any], args: Sequence[Any]) -> Any:
        if self.lua.name == "session_update":
            calls.append((list(keys), list(args)))
        return await positional(self, keys, args)

    scripts.Script.positional = recording  # type: ignore[method-assign]
    try:
        body = (HERE / "seed_patch.json").read_text().strip()
        headers = {"x-api-key": key, "content-type": "application/json"}
        with TestClient(create_app(Settings(redis_url=url))) as client:
            for seq in range(2):  # the second is a warmed PATCH: the process knows the key
                path = f"/v2/agents/{AGENT}/sessions/{SESSION}"
                answer = client.patch(path, content=body.replace("__SEQ__", str(seq)), headers=headers)
                answer.raise_for_status()
    finally:
        scripts.Script.positional = positional  # type: ignore[method-assign]
    return calls[-1]


class Caller:
    """Sends the captured call to a copy of the update script, through the store's own script runner."""

    def __init__(self, conn: redis.Redis, keys: list[Any], args: list[Any]) -> None:
        self.conn, self.keys, self.args = conn, keys, args
        self.at = args.index("metadata") + 1
        metadata = args[self.at]
        self.metadata = metadata.decode() if isinstance(metadata, bytes) else str(metadata)
        self.seq = 0

    def run(self, source: str, calls: int) -> None:
        declared = scripts.DECLARED["session_update"]
        script = scripts.SyncScript(self.conn, dataclasses.replace(declared, source=scripts.Lua(declared.name, source)))
        batch: list[scripts.Call] = []
        for _ in range(calls):
            self.seq += 1
            args = list(self.args)
            args[self.at] = re.sub(r'"seq":\d+', f'"seq":{self.seq}', self.metadata)
            batch.append((self.keys, args))
            if len(batch) >= BATCH:
                script.many(batch)
                batch = []
        if batch:
            script.many(batch)


def settled(conn: redis.Redis) -> None:
    """Outside the timed windows: the outbox cut back (no relay reads it here, and hundreds of thousands of
    calls would make it gigabytes) and the AOF compacted, so that no rewrite (a fork, and every write
    copied into its buffer meanwhile) lands in one copy's window and not another's. The append every
    write makes stays in every window."""
    for outbox in OUTBOXES:
        conn.xtrim(outbox, maxlen=10_000)
    settle_aof(conn)


def measure(caller: Caller, server: psutil.Process, sources: dict[str, str], calls: int, cycles: int) -> dict[str, Any]:
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in sources}
    for source in sources.values():
        caller.run(source, 500)  # loaded and warm
    names = list(sources)
    for cycle in range(cycles):
        for name in names if cycle % 2 == 0 else names[::-1]:
            settled(caller.conn)
            caller.conn.config_resetstat()
            before = sum(server.cpu_times()[:2])
            caller.run(sources[name], calls)
            cpu = (sum(server.cpu_times()[:2]) - before) * 1e6 / calls
            usec = float(caller.conn.info("commandstats")["cmdstat_evalsha"]["usec"]) / calls
            figures[name].append((usec, cpu))
    return {
        name: (statistics.median(u for u, _ in runs), statistics.median(c for _, c in runs))
        for name, runs in figures.items()
    }


def source_of(checkout: Path) -> str:
    """The update script as another checkout assembles it (its own preludes)."""
    program = "from agent_sessions.redis import scripts; print(scripts.lua('session_update').source, end='')"
    environment = {**os.environ, "PYTHONPATH": str(checkout / "src")}
    return subprocess.run(
        [sys.executable, "-c", program], env=environment, capture_output=True, text=True, check=True
    ).stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=3000, help="calls per copy and cycle")
    parser.add_argument("--cycles", type=int, default=5)
    parser.add_argument("--before", type=Path, help="a checkout of the code before a change: its whole script too")
    parser.add_argument("--redis-server", metavar="PATH", help=REDIS_SERVER_HELP)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        store = RedisServer(Path(tmp), executable=options.redis_server).start()
        try:
            conn = redis.Redis.from_url(store.url)
            keys, args = captured_call(store.url, seed(store.url))
            whole = scripts.lua("session_update").source
            sources = {step: stopped_at(whole, marker) for step, marker in STEPS}
            sources["the whole script (what a PATCH costs)"] = whole
            before = f"the whole script of {options.before}"
            if options.before is not None:
                sources[before] = source_of(options.before)
            server = psutil.Process(int(conn.info("server")["process_id"]))
            figures = measure(Caller(conn, keys, args), server, sources, options.calls, options.cycles)
            build = describe_redis(conn)
        finally:
            store.stop()
    print(f"session_update, {options.cycles} cycles x {options.calls} calls (medians), {build}")
    print("| the script stopped after | in the command µs | step µs | Redis process CPU µs |")
    print("|---|---:|---:|---:|")
    previous = 0.0
    for name, (usec, cpu) in figures.items():
        step = "" if name == before else f"{usec - previous:+.1f}"  # another script: no step of this one
        print(f"| {name} | {usec:.1f} | {step} | {cpu:.1f} |")
        previous = usec


if __name__ == "__main__":
    main()
