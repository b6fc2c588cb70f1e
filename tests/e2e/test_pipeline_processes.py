"""The whole product as it runs: `agent-sessions serve`, `agent-sessions worker` and a webhook receiver
as real processes, on Dramatiq's Redis broker and on RabbitMQ (the local server on 5672)."""

from __future__ import annotations

import asyncio
import signal
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import orjson
import pytest
import redis
from standardwebhooks import Webhook

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.webhooks.model import SETTINGS_ENDPOINT
from tests.support import stream
from tests.support.api import WEBHOOK_SECRET as SECRET
from tests.support.keys import KEYS
from tests.support.processes import command, env, serve, stop, working
from tests.support.receiver import Receiver
from tests.support.recount import assert_report_equals_recount
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e
AGENT = "agt_e2e"


@contextmanager
def stack(redis_url: str, receiver: Receiver, **settings: str) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """`agent-sessions serve` and `agent-sessions worker` on one Redis: (base URL, admin headers, env)."""
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, secret = Keyring(conn, KEYS).create(Role.ADMIN, rate=100_000.0, burst=100_000)
    environment = env(
        REDIS_URL=redis_url,
        ESCALATION_WEBHOOK_URL=receiver.url,
        ESCALATION_WEBHOOK_SECRET=SECRET,
        WEBHOOK_MIN_BACKOFF_MS="50",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",  # the receivers listen on 127.0.0.1
        **settings,
    )
    with serve(environment) as base, working(environment) as worker:
        headers = {"x-api-key": secret}
        assert httpx.post(f"{base}/v2/agents", json={"key": AGENT, "name": "e2e"}, headers=headers).status_code == 201
        yield base, headers, environment
        assert stop(worker, signal.SIGTERM, timeout=60)
    conn.close()


@pytest.fixture
def system(redis_url: str, broker_url: str, receiver: Receiver) -> Iterator[tuple[str, dict[str, str]]]:
    with stack(redis_url, receiver, BROKER_URL=broker_url, WEBHOOK_MAX_BACKOFF_MS="200", WEBHOOK_MAX_RETRIES="5") as (
        base,
        headers,
        _,
    ):
        yield base, headers


def test_escalating_patch_sends_one_signed_webhook(
    system: tuple[str, dict[str, str]], receiver: Receiver, redis_url: str
) -> None:
    base, headers = system
    sessions = f"{base}/v2/agents/{AGENT}/sessions"
    assert httpx.post(sessions, json={"key": "ase_1", "metadata": {"priority": "high"}}, headers=headers).is_success
    patched = httpx.patch(f"{sessions}/ase_1", json={"metadata": {"priority": "urgent"}}, headers=headers).json()
    (delivery,) = receiver.wait_for(1, timeout=60)
    payload = Webhook(SECRET).verify(delivery.body, delivery.headers)
    assert payload["data"]["version"] == patched["version"] and payload["data"]["session_key"] == "ase_1"
    assert payload["data"]["rule"] == "priority"
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    rows = KEYS.deliveries(SETTINGS_ENDPOINT)["rows"]

    def settled() -> bool:  # recorded as delivered, every event handled by both consumers
        counters = conn.hgetall(KEYS.counters)
        handled = int(counters.get("report_events:processed", 0)) >= 2  # created, updated
        handled = handled and int(counters.get("escalate_events:processed", 0)) >= 1
        row = orjson.loads(conn.hget(rows, delivery.headers["webhook-id"]) or "{}")
        return handled and row.get("status") == "delivered" and stream.outbox_length(conn) == 0

    eventually(settled, "the pipeline did not settle", timeout=60)
    assert len(receiver.deliveries) == 1  # one, not one per consumer or per retry
    assert conn.hgetall(KEYS.counters)["webhooks:delivered"] == "1"


def test_an_endpoint_made_through_the_api_receives_its_events(
    system: tuple[str, dict[str, str]], receiver: Receiver
) -> None:
    base, headers = system
    with Receiver() as analytics:
        body = {"url": analytics.url, "event_types": ["session.updated"], "agent_keys": [AGENT]}
        made = httpx.post(f"{base}/v2/webhook_endpoints", json=body, headers=headers)
        assert made.status_code == 201, made.text
        secret = made.json()["secret"]
        sessions = f"{base}/v2/agents/{AGENT}/sessions"
        assert httpx.post(sessions, json={"key": "ase_1"}, headers=headers).is_success
        patched = httpx.patch(f"{sessions}/ase_1", json={"description": "x"}, headers=headers).json()
        (delivery,) = analytics.wait_for(1, timeout=60)
        payload = Webhook(secret).verify(delivery.body, delivery.headers)
        assert payload["type"] == "session.updated" and payload["data"]["version"] == patched["version"]


def test_receiver_failing_twice_still_gets_the_webhook(system: tuple[str, dict[str, str]], receiver: Receiver) -> None:
    base, headers = system
    receiver.fail_next(2)
    sessions = f"{base}/v2/agents/{AGENT}/sessions"
    assert httpx.post(sessions, json={"key": "ase_1"}, headers=headers).is_success
    patched = httpx.patch(f"{sessions}/ase_1", json={"metadata": {"resolution_status": "escalated"}}, headers=headers)
    assert patched.status_code == 200, patched.text  # (a Response object itself is always true)
    receiver.wait_for(1, timeout=60)
    assert [d.status for d in receiver.deliveries] == [500, 500, 204]
    Webhook(SECRET).verify(receiver.deliveries[-1].body, receiver.deliveries[-1].headers)


def test_hundreds_of_parallel_patches_end_with_report_equal_to_recount(
    system: tuple[str, dict[str, str]], redis_url: str
) -> None:
    base, headers = system
    sessions = f"{base}/v2/agents/{AGENT}/sessions"
    priorities, channels = ["low", "high", "urgent"], ["web_chat", "email", "phone"]

    async def run() -> None:
        async with httpx.AsyncClient(headers=headers, timeout=30) as client:
            await asyncio.gather(*(client.post(sessions, json={"key": f"ase_{i}"}) for i in range(20)))
            limit = asyncio.Semaphore(32)

            async def patch(n: int) -> None:
                body = {
                    "metadata": {"priority": priorities[n % 3], "channel": channels[n % 7 % 3]},
                    "enabled": n % 5 != 0,
                }
                async with limit:
                    response = await client.patch(f"{sessions}/ase_{n % 20}", json=body)
                assert response.status_code == 200, response.text

            await asyncio.gather(*(patch(n) for n in range(400)))

    asyncio.run(run())
    expected = assert_report_equals_recount(base, headers, redis_url, AGENT, timeout=60)
    assert expected["updates"]["total"] > 100


@pytest.fixture
def impatient(redis_url: str, receiver: Receiver) -> Iterator[tuple[str, dict[str, str], dict[str, str]]]:
    """API and worker (Redis broker) with a one-retry schedule, so dead letters come quickly."""
    with stack(redis_url, receiver, WEBHOOK_MAX_BACKOFF_MS="100", WEBHOOK_MAX_RETRIES="1") as running:
        yield running


def test_dead_letters_are_listed_and_resent_by_the_cli(
    impatient: tuple[str, dict[str, str], dict[str, str]], receiver: Receiver
) -> None:
    base, headers, settings = impatient
    receiver.fail_next(1000)
    sessions = f"{base}/v2/agents/{AGENT}/sessions"
    httpx.post(sessions, json={"key": "ase_1"}, headers=headers)
    event = httpx.patch(f"{sessions}/ase_1", json={"metadata": {"priority": "urgent"}}, headers=headers)
    assert event.status_code == 200

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [command(), "deadletters", *args], env=settings, capture_output=True, text=True, timeout=60
        )

    eventually(lambda: "esc_" in cli("list").stdout, "no dead letter listed", timeout=60)
    listed = cli("list").stdout
    assert len(receiver.deliveries) == 2 and "HTTP 500" in listed  # first try + one retry, then dead
    assert SETTINGS_ENDPOINT in listed
    event_id = next(word for word in listed.split() if word.startswith("esc_"))
    receiver.fail_next(0)
    assert cli("retry", event_id).returncode == 0
    (delivery,) = receiver.wait_for(1, timeout=60)
    assert delivery.headers["webhook-id"] == event_id
    assert "esc_" not in cli("list").stdout
    assert cli("retry", event_id).returncode == 1  # no longer a dead letter
