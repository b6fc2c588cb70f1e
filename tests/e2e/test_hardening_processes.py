"""Hardening, over real HTTP against `agent-sessions serve` and a real Redis: load is not an outage,
proxies are trusted only when named, protocol edges, merge patches under contention."""

from __future__ import annotations

import asyncio
import socket
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import RedisServer
from tests.support import stream
from tests.support.keys import KEYS
from tests.support.processes import env, kill_group, serving, working
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e

AGENT, SESSION = "agt_load", "ase_1"
SESSION_URL = f"/v2/agents/{AGENT}/sessions/{SESSION}"


def admin_key(redis_url: str) -> dict[str, str]:
    secret = Keyring(sync_client(redis_url), KEYS).create(Role.ADMIN, rate=1e6, burst=1_000_000)[1]
    return {"x-api-key": secret}


def seed(base: str, headers: dict[str, str]) -> None:
    assert httpx.post(f"{base}/v2/agents", json={"key": AGENT, "name": "load"}, headers=headers).status_code == 201
    created = httpx.post(f"{base}/v2/agents/{AGENT}/sessions", json={"key": SESSION}, headers=headers)
    assert created.status_code == 201


async def burst(base: str, paths: list[str], headers: dict[str, str]) -> Counter[int]:
    """Every request at once, each on its own connection."""
    limits = httpx.Limits(max_connections=len(paths), max_keepalive_connections=0)
    async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
        responses = await asyncio.gather(*(client.get(path) for path in paths))
    return Counter(r.status_code for r in responses)


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis", appendfsync="always").start()
    yield server
    server.stop()


def test_a_thousand_concurrent_requests_get_no_503_and_a_redis_restart_fails_none(own_redis: RedisServer) -> None:
    headers = admin_key(own_redis.url)
    with serving(own_redis.url) as base:
        seed(base, headers)
        paths = ["/readyz", SESSION_URL] * 500
        assert asyncio.run(burst(base, paths, headers)) == Counter({200: 1000})

        # Redis restarts; every pooled connection of the API is now stale.
        own_redis.stop()
        own_redis.start()
        assert asyncio.run(burst(base, ["/readyz", SESSION_URL] * 75, headers)) == Counter({200: 150})


def test_forwarded_for_is_trusted_only_from_named_proxies(redis_url: str) -> None:
    unknown = {"x-api-key": "ask_" + "x" * 32}

    def statuses(base: str) -> Counter[int]:
        with httpx.Client(base_url=base) as client:
            return Counter(
                client.get(
                    "/v2/agents", headers={**unknown, "x-forwarded-for": f"10.0.{n // 250}.{n % 250}"}
                ).status_code
                for n in range(40)
            )

    with serving(redis_url) as base:  # no FORWARDED_ALLOW_IPS: the header is the client's word, ignored
        seen = statuses(base)
        assert seen[429] > 0, seen  # all 40 failures count against 127.0.0.1 (burst 20)
    sync_client(redis_url).flushall()
    with serving(redis_url, FORWARDED_ALLOW_IPS="127.0.0.1") as base:  # a named proxy: each address counts
        assert statuses(base) == Counter({401: 40})


def test_answers_carry_a_date_and_do_not_name_the_server(redis_url: str) -> None:
    """No ``server: uvicorn`` (it tells a scanner what runs here); ``date`` stays (HTTP wants it)."""
    headers = admin_key(redis_url)
    with serving(redis_url) as base:
        seed(base, headers)
        answers = [
            httpx.patch(f"{base}{SESSION_URL}", json={"description": "x"}, headers=headers),  # an endpoint's
            httpx.get(f"{base}/v2/nothing-here"),  # an error's
            httpx.get(f"{base}/openapi.json"),  # the Starlette application's
        ]
    assert [a.status_code for a in answers] == [200, 404, 200]
    for answer in answers:
        assert "server" not in answer.headers and "date" in answer.headers, answer.headers


def test_oversized_headers_get_431_and_slow_clients_time_out(redis_url: str) -> None:
    key = admin_key(redis_url)["x-api-key"]
    with serving(redis_url, REQUEST_READ_TIMEOUT="1") as base:
        port = int(base.rsplit(":", 1)[1])
        big = httpx.get(f"{base}/healthz", headers={"x-padding": "a" * 20_000})
        assert big.status_code == 431 and big.json()["code"] == "request_header_fields_too_large"
        assert httpx.get(f"{base}/healthz", headers={"x-padding": "a" * 8_000}).status_code == 200

        with socket.create_connection(("127.0.0.1", port)) as slow:  # headers that never end
            slow.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            slow.settimeout(10)
            started = time.monotonic()
            answer = slow.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408") and time.monotonic() - started < 5

        with socket.create_connection(("127.0.0.1", port)) as slow:  # a body that stops halfway
            slow.sendall(
                f"POST /v2/agents HTTP/1.1\r\nHost: x\r\nx-api-key: {key}\r\nContent-Type: application/json\r\n"
                "Content-Length: 100\r\n\r\n{".encode()
            )
            slow.settimeout(10)
            started = time.monotonic()
            assert slow.recv(4096) == b""  # closed by the server, not left hanging
            assert time.monotonic() - started < 5


def test_trailing_slash_is_a_json_404_and_a_disconnect_is_no_server_error(redis_url: str, tmp_path: Path) -> None:
    log = tmp_path / "serve.log"
    headers = admin_key(redis_url)
    with serving(redis_url, stderr=log, LOG_FORMAT="text") as base:
        slash = httpx.get(f"{base}/v2/agents/", headers={**headers, "host": "evil.example"})
        assert slash.status_code == 404 and slash.json()["code"] == "not_found"
        assert "location" not in slash.headers

        port = int(base.rsplit(":", 1)[1])
        with socket.create_connection(("127.0.0.1", port)) as client:  # half a body, then gone
            client.sendall(
                f"POST /v2/agents HTTP/1.1\r\nHost: x\r\nx-api-key: {headers['x-api-key']}\r\n"
                "Content-Type: application/json\r\nContent-Length: 1000\r\nExpect: 100-continue\r\n\r\n".encode()
            )
            # 100 Continue: the app has the request and waits for the body, which stops after "{".
            assert client.recv(4096).startswith(b"HTTP/1.1 100 Continue")
            client.sendall(b"{")
        eventually(lambda: "client disconnected" in log.read_text(), "no disconnect logged", timeout=10)
    text = log.read_text()
    assert "Traceback" not in text and " 500" not in text


def test_concurrent_merge_patches_all_succeed(redis_url: str) -> None:
    headers = admin_key(redis_url)
    with serving(redis_url) as base:
        seed(base, headers)

        async def run() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=200)
            async with httpx.AsyncClient(base_url=base, headers=headers, limits=limits, timeout=60) as client:
                return await asyncio.gather(
                    *(
                        client.patch(
                            SESSION_URL,
                            content=f'{{"metadata": {{"k": {{"n{n}": {n}}}}}}}',
                            headers={"content-type": "application/merge-patch+json"},
                        )
                        for n in range(200)
                    )
                )

        responses = asyncio.run(run())
        assert Counter(r.status_code for r in responses) == Counter({200: 200})
        session = httpx.get(f"{base}{SESSION_URL}", headers=headers).json()
        assert session["metadata"] == {"k": {f"n{n}": n for n in range(200)}} and session["version"] == 201


def test_relay_only_and_actors_only_workers_split_the_pipeline(redis_url: str, tmp_path: Path) -> None:
    headers = admin_key(redis_url)
    conn = sync_client(redis_url)
    with serving(redis_url) as base:
        seed(base, headers)
        patched = httpx.patch(f"{base}{SESSION_URL}", json={"metadata": {"priority": "urgent"}}, headers=headers)
        assert patched.status_code == 200
        report_url = f"{base}/v2/agents/{AGENT}/report"

        alive = tmp_path / "alive"
        environment = env(REDIS_URL=redis_url)
        with working(environment, "--relay-only", "--health-file", str(alive)) as relay:
            eventually(lambda: stream.outbox_length(conn) == 0, "the relay did not take the outbox")
            eventually(lambda: alive.exists() and time.time() - alive.stat().st_mtime < 2, "no heartbeat")
            assert not any("dramatiq" in " ".join(c.cmdline()) for c in psutil.Process(relay.pid).children(True))
            # Not a wait for something to happen: a window in which an actor, were there one, would
            # count the events (Dramatiq polls every 100 ms).
            time.sleep(1)
            assert httpx.get(report_url, headers=headers).json()["sessions"]["total"] == 0
            kill_group(relay)

        with working(environment, "--actors-only") as actors:
            eventually(
                lambda: httpx.get(report_url, headers=headers).json()["by_metadata"]["priority"] == {"urgent": 1},
                "the actors did not count the relayed events",
            )
            httpx.patch(f"{base}{SESSION_URL}", json={"description": "later"}, headers=headers)
            time.sleep(1)  # a window in which a relay, were there one, would take the event (it blocks 1 s)
            waiting = [f for _, f in stream.entries(conn) if f["type"] == "session.updated"]
            assert [f["s:description"] for f in waiting] == ["later"]  # (beside the escalation the actors recorded)
            kill_group(actors)
