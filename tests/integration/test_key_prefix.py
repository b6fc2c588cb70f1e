"""One prefix for every key: with another prefix, every part that writes Redis (API store, gate,
idempotency, purge, outbox, reports, escalations, key records) writes only keys under it, so the
prefix in ``redis/keys.py`` is the whole layout and nothing spells a key of its own."""

from __future__ import annotations

import pytest
import redis

from agent_sessions.access.auth import Role, digest
from agent_sessions.access.ratelimit import Gate, Limits
from agent_sessions.access.store import Keyring
from agent_sessions.escalations import rules
from agent_sessions.escalations.model import fired
from agent_sessions.escalations.store import EscalationStore
from agent_sessions.events.model import Origin, event_from_entry
from agent_sessions.events.outbox import Counters, Outbox
from agent_sessions.events.store import LogWriter
from agent_sessions.redis.client import async_client
from agent_sessions.redis.keys import Keys
from agent_sessions.reports.store import ReportStore
from agent_sessions.sessions.expiry import Expirer
from agent_sessions.sessions.purge import Purger
from agent_sessions.sessions.store import Idempotency, Query, Store
from agent_sessions.webhooks.model import escalation_body, escalation_message, event_message
from agent_sessions.webhooks.store import Bounds, Fanout, Webhooks
from tests.support.wait import eventually

pytestmark = pytest.mark.anyio
KEYS = Keys(prefix="other:")
ORIGIN = Origin("kid_x", "req_x")


async def test_every_key_written_is_under_the_configured_prefix(redis_url: str, sync_redis: redis.Redis) -> None:
    _, secret = Keyring(sync_redis, KEYS).create(Role.ADMIN)
    client = async_client(redis_url, 2.0)
    try:
        store = Store(client, KEYS, dimensions=("priority",))
        gate = Gate(client, KEYS, Limits(0.001, 100, 0.001, 5))  # buckets refill slowly: they stay
        await gate.admit(digest(secret), "10.0.0.1")
        await store.create_agent("agt_p", "p", "", b"{}", True)
        await store.create_session("agt_p", "ase_1", ORIGIN, "", "", b"{}", True)
        idem = Idempotency("kid_x", digest("retry-1"), "fp", 60, 10)
        admission = gate.admission(digest(secret), "10.0.0.1", lambda quota: None)
        urgent = store.indexes.indexed({"priority": "urgent"})
        await store.update_session(
            "agt_p", "ase_1", ORIGIN, {"metadata": '{"priority":"urgent"}'}, "", idem, admission, urgent
        )
        await store.create_session("agt_p", "ase_2", ORIGIN, "", "", b"{}", True)
        await store.delete_agent("agt_p", ORIGIN)
        assert await store.claim_seed()
        await store.create_agent("agt_q", "q", "", b"{}", True)  # kept: its indexes stay
        low = store.indexes.indexed({"priority": "low"})
        await store.create_session("agt_q", "ase_1", ORIGIN, "", "", b'{"priority":"low"}', True, None, "60", low)
        await store.create_session("agt_q", "ase_2", ORIGIN, "", "", b"{}", True, None, "0.0001")  # 6 ms
        found = await store.find_sessions("agt_q", Query(order="updated", program='["null", ["x"]]'))
        assert found.items[0][0] == "ase_1"  # (ase_2 may have expired already)
    finally:
        await client.aclose()
    while Purger(sync_redis, keys=KEYS, dimensions=("priority",)).step():
        pass
    expirer = Expirer(sync_redis, keys=KEYS, dimensions=("priority",))
    eventually(lambda: expirer.step()["expired"] == 1)
    outbox = Outbox(sync_redis, KEYS)
    outbox.ensure_group()
    # One stream per partition: in the order they were written across partitions, by stream id.
    entries = sorted(outbox.read_new("test", 100, None), key=lambda e: [int(n) for n in e[0].split("/")[1].split("-")])
    events = [event_from_entry(fields) for _, fields in entries]
    created, updated, deleted, expired = "session.created", "session.updated", "session.deleted", "session.expired"
    assert [e["type"] for e in events] == [created, updated, created, created, created, deleted, deleted, expired]
    assert LogWriter(sync_redis, KEYS).append([fields for _, fields in entries]) == len(entries)  # as the relay does
    ReportStore(sync_redis, KEYS, ("priority",)).apply_all(events)
    escalations = EscalationStore(sync_redis, keys=KEYS)
    update = events[1]
    names = fired(rules.defaults((("priority", "urgent"),), ()), update)
    new, body = escalations.record(update, names, escalation_body(update, names))
    assert new
    client = async_client(redis_url, 2.0)
    try:  # an endpoint, its deliveries (one dead), an agent's rules
        webhooks = Webhooks(client, KEYS, Bounds())
        record = {"url": "http://x", "event_types": "[]", "agent_keys": "null", "enabled": "1", "secrets": "[]"}
        assert (await webhooks.create("whe_p", record))[0] == "ok"
        Fanout(sync_redis, KEYS, Bounds()).queue([("whe_p", event_message(update))])
        assert sync_redis.hexists(KEYS.deliveries("whe_p")["rows"], update["event_id"])
        await webhooks.enqueue("whe_p", [escalation_message(update["event_id"], body)])
        for message, _ in (await webhooks.claim([("whe_p", 10)], 1000))["whe_p"].messages:
            assert await webhooks.result("whe_p", message, 500, "HTTP 500", 1, (1, 1)) == "dead"
        assert await webhooks.put_rules("agt_q", rules.defaults((), ("tier",)).encode())
    finally:
        await client.aclose()
    Counters(sync_redis, KEYS).add("report_events:processed", 1)
    outbox.set_aside({"bad": "entry"})
    outbox.ack([entry_id for entry_id, _ in entries])

    written = sorted(sync_redis.scan_iter("*"))
    assert written and all(key.startswith("other:") for key in written), written
    kinds = {key.split(":")[1] for key in written}
    assert {
        "apikey",
        "apikeys",
        "rl",
        "idem",
        "outbox",
        "report",
        "escalation",
        "whe",
        "whes",
        "whd",
        "whl",
        "rules",
        "metrics",
        "{events}",
        "sessions",
        "idx",
        "expiry",
    } <= kinds
