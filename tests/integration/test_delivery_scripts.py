"""The delivery scripts against real Redis, on what the API tests do not reach: the bounds of the
backlog and of the log, the lease of a claimed message, the backoff, and the dead-letter gauge."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis

from agent_sessions.events.outbox import pipeline_snapshot
from agent_sessions.redis.client import async_client
from agent_sessions.webhooks.model import Message
from agent_sessions.webhooks.store import ATTEMPTS_KEPT, Bounds, Webhooks
from tests.support.clock import redis_now_ms, until_redis_time
from tests.support.keys import KEYS

pytestmark = [pytest.mark.anyio, pytest.mark.both_topologies]
E = "whe_test"
RECORD = {"url": "http://x.test", "event_types": "[]", "agent_keys": "null", "enabled": "1", "secrets": "[]"}


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Webhooks]:
    client = async_client(redis_url, 2.0)
    webhooks = Webhooks(client, KEYS, Bounds(backlog_max=3, log_max=4, endpoints_max=5))
    assert (await webhooks.create(E, RECORD))[0] == "ok"
    yield webhooks
    await client.aclose()


def messages(*ids: str) -> list[Message]:
    return [Message(i, "session.created", f'{{"id":"{i}"}}'.encode()) for i in ids]


async def deliver_all(store: Webhooks) -> None:
    for message, _ in (await store.claim([(E, 100)], 60_000))[E].messages:
        assert await store.result(E, message, 204, "", 3, (10, 20)) == "delivered"


async def test_the_backlog_refuses_past_its_bound_and_the_log_drops_the_oldest_delivered(
    store: Webhooks, sync_redis: redis.Redis
) -> None:
    assert await store.enqueue(E, messages("evt_1", "evt_2", "evt_3", "evt_4")) == ["queued"] * 3 + ["full"]
    assert await store.enqueue(E, messages("evt_1")) == ["exists"]  # idempotent on the message id
    assert await store.enqueue("whe_gone", messages("evt_1")) == ["no_endpoint"]
    await deliver_all(store)
    assert sync_redis.hlen(KEYS.deliveries(E)["bodies"]) == 0  # bodies go once delivered
    assert await store.enqueue(E, messages("evt_5", "evt_6")) == ["queued", "queued"]
    rows, _ = await store.page(E, None, "", 100)
    assert [r["id"] for r in rows] == ["evt_6", "evt_5", "evt_3", "evt_2"]  # 4 rows at most: evt_1 went
    delivered, _ = await store.page(E, "delivered", "", 100)
    assert [r["id"] for r in delivered] == ["evt_3", "evt_2"]


async def test_a_claimed_message_is_leased_and_taken_again_once_its_lease_is_over(
    store: Webhooks, sync_redis: redis.Redis
) -> None:
    await store.enqueue(E, messages("evt_1"))
    first = (await store.claim([(E, 10)], 300))[E]
    assert [m for m, _ in first.messages] == ["evt_1"] and first.fields["url"] == "http://x.test"
    assert (await store.claim([(E, 10)], 300))[E].messages == []  # leased: no one else takes it
    # the lease (300 ms) runs out: the worker that took it died
    until_redis_time(sync_redis, sync_redis.zscore(KEYS.deliveries(E)["queue"], "evt_1") or 0, "the lease")
    assert [m for m, _ in (await store.claim([(E, 10)], 300))[E].messages] == ["evt_1"]
    assert (await store.claim([(E, 0)], 300))[E].messages == []  # no free slot: nothing taken


async def test_failures_back_off_then_die_and_the_gauge_counts_dead_letters(
    store: Webhooks, sync_redis: redis.Redis
) -> None:
    await store.enqueue(E, messages("evt_1", "evt_2"))
    outcomes = []
    for _ in range(3):
        claimed = (await store.claim([(E, 10)], 60_000))[E].messages
        for message, _ in claimed:
            outcomes.append(await store.result(E, message, 500, "HTTP 500", 3, (200, 300)))
        row = await store.row(E, "evt_1")
        assert row is not None
        if row["status"] == "failed":
            wait_ms = int(row["next_attempt_at"]) - redis_now_ms(sync_redis)  # the scripts' clock
            assert 0 < wait_ms <= 300  # 200 ms, then 300 (the cap)
            until_redis_time(sync_redis, int(row["next_attempt_at"]), "the backoff")
    assert outcomes == ["failed", "failed", "failed", "failed", "dead", "dead"]
    counted = {k: int(v) for k, v in sync_redis.hgetall(KEYS.counters).items()}
    assert counted == {"webhooks:failed": 6, "webhooks:dead_lettered": 2}  # each attempt once
    assert pipeline_snapshot(sync_redis, KEYS)["dead"] == 2
    assert await store.enqueue(E, messages("evt_1"), force=True) == ["queued"]  # redelivered
    assert pipeline_snapshot(sync_redis, KEYS)["dead"] == 1
    assert await store.delete(E)
    assert pipeline_snapshot(sync_redis, KEYS)["dead"] == 0
    # the whole log went with it (the version of the endpoints, bumped by every change, stays)
    assert [key for key in sync_redis.scan_iter("as:wh*")] == [KEYS.webhook_endpoints_version]


async def test_a_delivery_keeps_its_newest_attempts_only(store: Webhooks) -> None:
    await store.enqueue(E, messages("evt_1"))
    for i in range(ATTEMPTS_KEPT + 5):
        assert await store.result(E, "evt_1", 500, f"attempt {i}", 1000, (1, 1)) == "failed"
    kept = await store.attempts(E, "evt_1")
    assert kept is not None and len(kept) == ATTEMPTS_KEPT
    assert [a["error"] for a in kept] == [f"attempt {i}" for i in range(5, ATTEMPTS_KEPT + 5)]  # oldest first
    row = await store.row(E, "evt_1")
    assert row is not None and row["attempts"] == ATTEMPTS_KEPT + 5  # the count goes on


async def test_a_rotation_keeps_at_most_the_newest_secrets_and_drops_expired_ones(
    store: Webhooks, sync_redis: redis.Redis
) -> None:
    import orjson

    for secret in ("whsec_a", "whsec_b", "whsec_c", "whsec_d"):
        assert await store.rotate(E, secret, 60_000, 3) is not None
    stored = await store.get(E)
    assert stored is not None
    kept = orjson.loads(stored["secrets"])
    assert [s["secret"] for s in kept] == ["whsec_d", "whsec_c", "whsec_b"] and kept[0]["expires_ms"] == "0"
    assert all(int(s["expires_ms"]) > redis_now_ms(sync_redis) for s in kept[1:])
    updated = await store.rotate(E, "whsec_e", 0, 3)
    assert updated is not None and [s["secret"] for s in orjson.loads(updated["secrets"])] == ["whsec_e"]
    assert await store.rotate("whe_gone", "whsec_x", 0, 3) is None
