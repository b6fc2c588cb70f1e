"""Webhook deliveries of a real ``agent-sessions worker`` killed with SIGKILL while its attempts wait
on a slow receiver: the leases run out, a new worker sends them again, and every message arrives."""

from __future__ import annotations

import httpx
import orjson
import pytest
import redis
from standardwebhooks import Webhook

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from tests.faults.helpers import FAST_REDELIVERY
from tests.support.keys import KEYS
from tests.support.processes import env, kill_group, serve, working
from tests.support.receiver import Receiver
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e
AGENT = "agt_hooks"
SESSIONS = 20


def test_deliveries_under_way_when_a_worker_dies_are_sent_by_the_next(redis_url: str, receiver: Receiver) -> None:
    conn = redis.Redis.from_url(redis_url, decode_responses=True)
    _, key = Keyring(conn, KEYS).create(Role.ADMIN, rate=1e6, burst=10**6)
    headers = {"x-api-key": key}
    # An attempt may take 5 s, so a lease lasts 10 s (WEBHOOK_TIMEOUT + 5 s); the worker dies before.
    settings = env(
        REDIS_URL=redis_url,
        BROKER_URL=redis_url,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        WEBHOOK_TIMEOUT="5",
        WEBHOOK_MIN_BACKOFF_MS="100",
        WEBHOOK_CONCURRENCY="4",
        **FAST_REDELIVERY,
    )
    with serve(settings) as base:
        made = httpx.post(
            f"{base}/v2/webhook_endpoints",
            json={"url": receiver.url, "event_types": ["session.created"], "agent_keys": [AGENT]},
            headers=headers,
        )
        assert made.status_code == 201, made.text
        endpoint, secret = made.json()["id"], made.json()["secret"]
        assert httpx.post(f"{base}/v2/agents", json={"key": AGENT, "name": "h"}, headers=headers).status_code == 201
        receiver.hold()  # every attempt waits: the worker dies with attempts under way
        with working(settings) as first:
            for i in range(SESSIONS):
                created = httpx.post(f"{base}/v2/agents/{AGENT}/sessions", json={"key": f"ase_{i}"}, headers=headers)
                assert created.status_code == 201
            rows = KEYS.deliveries(endpoint)["rows"]
            eventually(lambda: conn.hlen(rows) > SESSIONS, "the relay did not queue the deliveries", 60)
            eventually(lambda: len(receiver.deliveries) == 0 and _leased(conn, endpoint) == 4, "no attempts", 30)
            kill_group(first)
        receiver.release()
        with working(settings):
            eventually(
                lambda: all(
                    orjson.loads(r)["status"] == "delivered" for f, r in conn.hgetall(rows).items() if f != "#seq"
                ),
                "not every delivery was made after the restart",
                90,
            )
    ids = {d.headers["webhook-id"] for d in receiver.succeeded()}
    created_ids = {f for f in conn.hkeys(rows) if f != "#seq"}
    assert len(created_ids) == SESSIONS and ids == created_ids  # each one arrived (the held ones maybe twice)
    for delivery in receiver.succeeded():
        assert Webhook(secret).verify(delivery.body, delivery.headers)["type"] == "session.created"


def _leased(conn: redis.Redis, endpoint: str) -> int:
    """Messages whose next attempt lies in the future: leased by a worker (none failed yet)."""
    now_ms = int(conn.time()[0]) * 1000
    return int(conn.zcount(KEYS.deliveries(endpoint)["queue"], now_ms + 1, "+inf"))
