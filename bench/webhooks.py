"""Webhook delivery at scale (`make bench BENCH_ARGS=--webhooks-only`, and part of the full run).

One API process and one `agent-sessions worker` on a private Redis; ten agents with 47 sessions each;
wrk PATCHes them round-robin on a fixed schedule (bench/spread.lua, one PATCH in ten escalating). Ten
webhook endpoints with different filters, each with its own local keep-alive receiver:

- eight take `session.updated` of one agent each (agt_w0 … agt_w7);
- one takes `session.escalated` of every agent;
- one takes `session.updated` of agt_w8 and agt_w9 and answers after SLOW_S seconds (or at once, in the
  comparison run).

Two runs, the same schedule: with the slow receiver, and with it answering at once. For each endpoint,
the webhook-ids received are compared with the events it subscribes to (from the event log and the
escalation records, after the run): "exact" means every one arrived and nothing else did; duplicates
(the same webhook-id twice) are counted. The slow endpoint cannot keep up by design (SLOW_S per answer,
WEBHOOK_CONCURRENCY at once): what it has not received yet must still be queued, not lost.
Latency is arrival minus the event's occurred_at (Redis TIME).
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import httpx
import redis

from agent_sessions.redis.keys import Keys

KEYS = Keys()  # the bench's servers run with the default settings

AGENTS, SESSIONS = 10, 47
SLOW_S = 2.0


class Recorder:
    """One receiver of bench/receivers.py: its URL, and what it received so far."""

    def __init__(self, port: int, delay: float) -> None:
        self.base = f"http://127.0.0.1:{port}"
        self.url = f"{self.base}/hook"
        self.delay = delay

    def stats(self, reset: bool = False) -> tuple[list[str], list[float]]:
        got = httpx.get(f"{self.base}/{'reset' if reset else 'stats'}", timeout=30).json()
        return got["ids"], got["latencies_ms"]


def start_receivers(delays: list[float]) -> tuple[subprocess.Popen[str], list[Recorder]]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).parent / "receivers.py"), *map(str, delays)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    return proc, [Recorder(int(proc.stdout.readline()), delay) for delay in delays]


def endpoints(slow_delay: float) -> tuple[subprocess.Popen[str], list[tuple[str, dict[str, Any], Recorder]]]:
    made = [(f"agt_w{i} updates", {"event_types": ["session.updated"], "agent_keys": [f"agt_w{i}"]}) for i in range(8)]
    made.append(("escalations", {"event_types": ["session.escalated"]}))
    slow_name = f"slow ({slow_delay:g} s per answer)" if slow_delay else "the same, fast"
    made.append((slow_name, {"event_types": ["session.updated"], "agent_keys": ["agt_w8", "agt_w9"]}))
    proc, recorders = start_receivers([0.0] * 9 + [slow_delay])
    return proc, [(name, body, recorder) for (name, body), recorder in zip(made, recorders, strict=True)]


def expected_ids(conn: redis.Redis, body: dict[str, Any]) -> set[str]:
    """The message ids an endpoint subscribes to, from the event log and the escalation records."""
    agents = set(body.get("agent_keys") or [])
    found: set[str] = set()
    for _, fields in cast(list[tuple[str, dict[str, str]]], conn.xrange(KEYS.events)):
        if agents and fields["agent_key"] not in agents:
            continue
        if fields["type"] in body["event_types"]:
            found.add(fields["event_id"])
        if "session.escalated" in body["event_types"] and conn.exists(
            KEYS.escalation(fields["agent_key"], fields["event_id"])
        ):
            found.add("esc_" + fields["event_id"].removeprefix("evt_"))
    return found


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else float("nan")


def webhook_run(
    redis_url: str,
    rate: int,
    seconds: float,
    slow_delay: float,
    serve: Callable[[dict[str, str]], tuple[str, Callable[[], None]]],
    drive: Callable[[str, float, dict[str, str]], dict[str, float]],
) -> dict[str, Any]:
    """One run: endpoints made through the API, wrk at ``rate``, then each endpoint's outcome."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    conn.flushall()
    conn.script_flush()
    from agent_sessions.access.auth import Role
    from agent_sessions.access.store import Keyring

    _, key = Keyring(conn, KEYS).create(Role.ADMIN, rate=1e9, burst=10**9)
    receivers, hooks = endpoints(slow_delay)
    env = {**os.environ, "REDIS_URL": redis_url, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", "LOG_LEVEL": "WARNING"}
    base, stop_all = serve(env)
    headers = {"x-api-key": key}
    try:
        asyncio.run(_populate(base, headers))
        ids = []
        for _, body, recorder in hooks:
            made = httpx.post(f"{base}/v2/webhook_endpoints", json={"url": recorder.url, **body}, headers=headers)
            made.raise_for_status()
            ids.append(made.json()["id"])
        time.sleep(1.5)  # the relay reads the endpoints at least every second
        conn.xtrim(KEYS.events, maxlen=0)  # count only what the run sends
        for _, _, recorder in hooks:
            recorder.stats(reset=True)
        result = drive(base, seconds, {**env, "API_KEY": key, "RATE": str(rate), "AGENTS": str(AGENTS)})
        fast = [(endpoint, body, rec) for endpoint, (_, body, rec) in zip(ids, hooks, strict=True) if not rec.delay]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # the fast endpoints catch up
            if sum(conn.xlen(KEYS.outbox(tag)) for tag in KEYS.tags()) == 0 and all(
                len(set(r.stats()[0])) >= len(expected_ids(conn, b)) for _, b, r in fast
            ):
                break
            time.sleep(0.5)
        rows = []
        for endpoint, (name, body, recorder) in zip(ids, hooks, strict=True):
            ids_got, latencies = recorder.stats()
            expected, received = expected_ids(conn, body), set(ids_got)
            _, _, _, _, pending, _, failed, dead = KEYS.deliveries(endpoint)
            undelivered = conn.zcard(pending) + conn.zcard(failed) + conn.zcard(dead)
            queued = {m for m in expected - received if conn.hexists(KEYS.deliveries(endpoint)["rows"], m)}
            rows.append(
                {
                    "name": name,
                    "expected": len(expected),
                    "received": len(received),
                    "duplicates": len(ids_got) - len(received),
                    "extra": len(received - expected),
                    "missing_not_queued": len(expected - received - queued),
                    "undelivered": undelivered,
                    "p50": percentile(latencies, 50),
                    "p99": percentile(latencies, 99),
                    "slow": bool(recorder.delay),
                }
            )
        return {"rate": result["rps"], "errors": result["errors"], "sent": result["requests"], "endpoints": rows}
    finally:
        stop_all()
        receivers.terminate()
        receivers.wait()
        conn.close()


async def _populate(base: str, headers: dict[str, str]) -> None:
    async with httpx.AsyncClient(base_url=base, headers=headers, timeout=30) as client:
        for i in range(AGENTS):
            (await client.post("/v2/agents", json={"key": f"agt_w{i}", "name": f"w{i}"})).raise_for_status()
        for i in range(AGENTS):
            made = await asyncio.gather(
                *(client.post(f"/v2/agents/agt_w{i}/sessions", json={"key": f"ase_{s}"}) for s in range(SESSIONS))
            )
            for response in made:
                response.raise_for_status()


def print_webhooks(runs: list[dict[str, Any]], rate: int, seconds: float) -> None:
    print()
    print(f"| webhooks at {rate} PATCH/s for {seconds:g} s, 10 endpoints | expected | received | dup | extra "
          "| lost | queued | p50 ms | p99 ms |")  # fmt: skip
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for run in runs:
        label = "with the slow endpoint" if any(r["slow"] for r in run["endpoints"]) else "without it"
        print(f"| **{label}**: {run['rate']:.0f} PATCH/s achieved ({run['errors']:.0f} errors) | | | | | | | | |")
        for r in run["endpoints"]:
            print(
                f"| {r['name']} | {r['expected']} | {r['received']} | {r['duplicates']} | {r['extra']} | "
                f"{r['missing_not_queued']} | {r['undelivered']} | {r['p50']:.0f} | {r['p99']:.0f} |"
            )
