"""Outbox -> relay -> actors -> reports, escalations and signed webhooks, in process.

Real Redis for the outbox, reports and escalations; Dramatiq's StubBroker and an in-process worker for
the queues (the end-to-end tests run the real brokers and processes); a real local HTTP receiver.
"""

from __future__ import annotations

import base64
import logging
import random
import threading
from collections.abc import Iterator
from typing import Any

import dramatiq
import orjson
import pytest
import redis
from standardwebhooks import Webhook
from starlette.testclient import TestClient

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.escalations import rules
from agent_sessions.escalations.model import fired
from agent_sessions.escalations.store import EscalationStore
from agent_sessions.events.model import DELIVER_WEBHOOK, ESCALATE, REPORT, event_from_entry
from agent_sessions.events.outbox import Outbox
from agent_sessions.events.relay import Relay
from agent_sessions.logs import configure as configure_logging
from agent_sessions.redis.client import sync_client
from agent_sessions.reports.store import ReportStore
from agent_sessions.webhooks.model import SETTINGS_ENDPOINT, escalation_id
from agent_sessions.webhooks.store import Bounds, Fanout
from agent_sessions.worker.middleware import Lifecycle
from tests.support import stream
from tests.support.keys import KEYS
from tests.support.receiver import Receiver
from tests.support.recount import assert_report_matches
from tests.support.recount import recount as shared_recount
from tests.support.stub import stub_broker
from tests.support.stub import worker as worker_context
from tests.support.wait import eventually

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
A = "agt_support"
DIMS = ("priority", "channel", "issue_category", "resolution_status", "escalation_level")


@pytest.fixture
def pipeline_settings(redis_url: str, receiver: Receiver) -> Settings:
    return Settings(
        redis_url=redis_url,
        escalation_webhook_url=receiver.url,
        escalation_webhook_secret=SECRET,
        webhook_max_retries=2,
        webhook_min_backoff_ms=10,
        webhook_max_backoff_ms=40,
        webhook_allow_private_networks=True,  # the receiver is on 127.0.0.1
        relay_claim_idle_ms=100,
    )


@pytest.fixture
def settings(pipeline_settings: Settings) -> Settings:
    """The API of these tests knows the escalation webhook too (whe_settings)."""
    return pipeline_settings


@pytest.fixture
def deliveries(pipeline_settings: Settings) -> Iterator[None]:
    """The delivery loop of a worker process, in a thread."""
    stop = threading.Event()
    thread = threading.Thread(target=bootstrap.deliveries(pipeline_settings).run, args=(stop,), daemon=True)
    thread.start()
    yield
    stop.set()
    thread.join(15)


@pytest.fixture
def worker(pipeline_settings: Settings) -> Iterator[dramatiq.Worker]:
    """An in-process worker (as in Dramatiq's own tests), its resources pointed at this test's Redis."""
    res = worker_context
    res.close()
    res.settings = pipeline_settings
    stub_broker.flush_all()
    w = dramatiq.Worker(stub_broker, worker_timeout=20, worker_threads=4)
    w.start()
    yield w
    w.stop()
    stub_broker.flush_all()
    res.close()


@pytest.fixture
def relay(redis_url: str) -> Iterator[Relay]:
    client = sync_client(redis_url)
    r = Relay(
        Outbox(client, KEYS),
        stub_broker,
        Fanout(client, KEYS, Bounds()),
        name="relay-1",
        claim_idle_ms=100,
        block_ms=10,
    )
    r.ensure_group()
    yield r
    client.close()


@pytest.fixture
def api(client: TestClient, admin: dict[str, str]) -> Any:
    assert client.post("/v2/agents", json={"key": A, "name": "Support"}, headers=admin).status_code == 201

    def call(method: str, path: str, **kwargs: Any) -> Any:
        response = client.request(method, f"/v2/agents/{A}{path}", headers=admin, **kwargs)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    return call


def queued_events(queue: str) -> list[list[dict[str, Any]]]:
    """The event lists of the messages waiting in a stub queue (taken off it)."""
    q = stub_broker.queues[queue]
    taken = []
    for _ in range(q.qsize()):
        taken.append(dramatiq.Message.decode(q.get_nowait()).args[0])
        q.task_done()  # or a later join() on this queue waits forever
    return taken


def drain(relay: Relay) -> None:
    while relay.step():
        pass
    for _ in range(3):  # actors enqueue more work (deliveries); join until all is quiet
        for queue in (REPORT[1], ESCALATE[1]):
            stub_broker.join(queue, fail_fast=False)


def report(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    response = client.get(f"/v2/agents/{A}/report", headers=admin)
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def recount(sync_redis: redis.Redis, agent: str) -> dict[str, Any]:
    """What the report must say, from the stored sessions (independent of the reporting code)."""
    return shared_recount(sync_redis, agent, DIMS)


def test_relay_enqueues_each_event_for_its_consumers_and_trims_only_acked(
    api: Any, relay: Relay, sync_redis: redis.Redis
) -> None:
    api("POST", "/sessions", json={"key": "ase_1"})
    api("PATCH", "/sessions/ase_1", json={"description": "x"})
    stub_broker.flush_all()
    assert stream.outbox_length(sync_redis) == 2
    assert relay.step() == 2
    # one message per consumer per batch, holding that consumer's events
    (reports,) = queued_events(REPORT[1])
    (escalations,) = queued_events(ESCALATE[1])
    assert [e["type"] for e in reports] == ["session.created", "session.updated"]
    assert [e["type"] for e in escalations] == ["session.updated"]
    assert stream.outbox_length(sync_redis) == 0
    assert sync_redis.xpending(KEYS.outbox(KEYS.tag(A)), "relay")["pending"] == 0


def test_relay_lingers_so_events_arriving_just_after_travel_in_the_same_messages(
    api: Any, relay: Relay, sync_redis: redis.Redis
) -> None:
    api("POST", "/sessions", json={"key": "ase_1"})
    api("PATCH", "/sessions/ase_1", json={"description": "x"})
    stub_broker.flush_all()
    # Take the second event out and put it back while the relay lingers over the first.
    ((second_id, second),) = stream.entries(sync_redis, count=1, min="(" + stream.entries(sync_redis)[0][0])
    sync_redis.xdel(KEYS.outbox(KEYS.tag(A)), second_id)
    later = threading.Timer(0.05, lambda: sync_redis.xadd(KEYS.outbox(KEYS.tag(A)), second))  # type: ignore[arg-type]
    relay.linger_ms = 1000
    later.start()
    try:
        assert relay.step() == 2
    finally:
        later.join()
    (reports,) = queued_events(REPORT[1])
    assert [e["type"] for e in reports] == ["session.created", "session.updated"]
    assert stream.outbox_length(sync_redis) == 0


def test_enqueue_failure_acknowledges_nothing(
    api: Any, relay: Relay, sync_redis: redis.Redis, monkeypatch: pytest.MonkeyPatch
) -> None:
    api("POST", "/sessions", json={"key": "ase_1"})

    def broker_down(message: Any, **kwargs: Any) -> None:
        raise ConnectionError("broker unreachable")

    monkeypatch.setattr(relay.broker, "enqueue", broker_down)
    with pytest.raises(ConnectionError):
        relay.step()
    assert stream.outbox_length(sync_redis) == 1
    assert sync_redis.xpending(KEYS.outbox(KEYS.tag(A)), "relay")["pending"] == 1


def test_relay_killed_between_enqueue_and_ack_is_redelivered_and_harmless(
    api: Any,
    relay: Relay,
    worker: dramatiq.Worker,
    redis_url: str,
    sync_redis: redis.Redis,
    client: TestClient,
    admin: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    api("POST", "/sessions", json={"key": "ase_1", "metadata": {"priority": "low"}})
    api("PATCH", "/sessions/ase_1", json={"metadata": {"priority": "urgent"}})

    def die(entry_ids: list[str]) -> None:
        raise SystemExit("relay killed before acknowledging")

    monkeypatch.setattr(relay, "ack", die)
    with pytest.raises(SystemExit):
        relay.step()  # enqueued, never acknowledged
    monkeypatch.undo()
    other = Relay(Outbox(sync_client(redis_url), KEYS), stub_broker, name="relay-2", claim_idle_ms=100, block_ms=10)
    # Reclaimed once idle past claim_idle_ms, and enqueued again (the escalation the first relay's
    # messages led to is in the outbox meanwhile: relayed first, as new).
    relayed = 0

    def reclaimed() -> bool:
        nonlocal relayed
        relayed += other.step()
        return sync_redis.xpending(KEYS.outbox(KEYS.tag(A)), "relay")["pending"] == 0 and relayed >= 2

    eventually(reclaimed, "the entries were not reclaimed")
    drain(other)
    body = report(client, admin)
    assert body["sessions"] == {"total": 1, "enabled": 1}
    assert body["updates"] == {"total": 1} and body["escalations"] == {"total": 1}
    assert body["by_metadata"]["priority"] == {"urgent": 1}
    assert stream.outbox_length(sync_redis) == 0


def test_report_equals_recount_after_creates_updates_deletes(
    api: Any,
    relay: Relay,
    worker: dramatiq.Worker,
    sync_redis: redis.Redis,
    client: TestClient,
    admin: dict[str, str],
) -> None:
    rng = random.Random(7)
    updates = 0
    for i in range(30):
        api("POST", "/sessions", json={"key": f"ase_{i}", "metadata": {"priority": rng.choice(["low", "high"])}})
    for _ in range(120):
        i = rng.randrange(30)
        change = {
            "metadata": {"priority": rng.choice(["low", "high", "urgent"]), "channel": rng.choice(["web", "phone"])},
            "enabled": rng.random() < 0.7,
        }
        before = api("GET", f"/sessions/ase_{i}")["version"]
        updates += api("PATCH", f"/sessions/ase_{i}", json=change)["version"] - before
    for i in range(0, 30, 7):
        api("DELETE", f"/sessions/ase_{i}")
    api("POST", "/sessions", json={"key": "ase_0", "metadata": {"priority": "reborn"}})  # same key again
    drain(relay)
    body = report(client, admin)
    expected = recount(sync_redis, A)
    assert body["sessions"] == expected["sessions"]
    assert body["by_metadata"] == expected["by_metadata"]
    assert body["by_metadata_other"] == dict.fromkeys(DIMS, 0)
    assert body["updates"]["total"] == updates


def apply_in_batches(reports: ReportStore, events: list[Any], rng: random.Random, sync_redis: redis.Redis) -> int:
    """Random-size batches, as the relay's messages are; Redis forgets the script once on the way."""
    counted, start, flush_at = 0, 0, len(events) // 2
    while start < len(events):
        size = rng.randint(1, 9)
        if start <= flush_at < start + size:
            sync_redis.script_flush()
        counted += reports.apply_all(events[start : start + size])
        start += size
    return counted


@pytest.mark.parametrize("mode", ["one by one", "in batches"])
def test_reporting_is_exact_with_duplicates_and_any_order(
    api: Any, redis_url: str, sync_redis: redis.Redis, mode: str
) -> None:
    api("POST", "/sessions", json={"key": "ase_1", "metadata": {"priority": "low"}})
    for p in ("high", "urgent", "low"):
        api("PATCH", "/sessions/ase_1", json={"metadata": {"priority": p}})
    api("PATCH", "/sessions/ase_1", json={"enabled": False})
    api("DELETE", "/sessions/ase_1")
    api("POST", "/sessions", json={"key": "ase_2", "metadata": {"priority": "high"}})
    api("PATCH", "/sessions/ase_2", json={"enabled": False})
    events = [event_from_entry(fields) for _, fields in stream.entries(sync_redis)]
    reports = ReportStore(sync_client(redis_url), KEYS, DIMS)
    for seed in range(5):
        for key in sync_redis.scan_iter("as:report:*"):
            sync_redis.delete(key)
        shuffled = events * 2  # every event delivered twice
        rng = random.Random(seed)
        rng.shuffle(shuffled)
        if mode == "one by one":
            counted = sum(reports.apply(e) for e in shuffled)
        else:
            counted = apply_in_batches(reports, shuffled, rng, sync_redis)
        assert counted == len(events)
        body = reports.read(A)
        assert body["sessions"] == {"total": 1, "enabled": 0}
        assert body["by_metadata"]["priority"] == {"high": 1}
        assert body["updates"] == {"total": 5}


def test_report_values_follow_the_stated_rule_and_stay_bounded(
    api: Any, redis_url: str, sync_redis: redis.Redis
) -> None:
    """Strings count (the empty one too), nothing else does, long values are cut, and a dimension
    keeps at most max_values buckets: a flood of unique values costs a bounded hash."""
    values: list[Any] = ["", "1", 1, True, "true", None, {"x": 1}, "p" * 300, "p" * 64 + "other tail"]
    for i, value in enumerate(values):
        api("POST", "/sessions", json={"key": f"ase_v{i}", "metadata": {"priority": value}})
    events = [event_from_entry(fields) for _, fields in stream.entries(sync_redis)]
    reports = ReportStore(sync_client(redis_url), KEYS, DIMS, max_values=3, max_chars=64)
    reports.apply_all(events)
    body = reports.read(A)
    assert_report_matches(body, shared_recount(sync_redis, A, DIMS), max_values=3)
    # "", "1" and "true" took the three buckets; the two long values (one after the cut) count as other
    assert body["by_metadata"]["priority"] == {"": 1, "1": 1, "true": 1}
    assert body["by_metadata_other"]["priority"] == 2

    for key in sync_redis.scan_iter("as:report:*"):
        sync_redis.delete(key)
    for i in range(500):  # unique values, each 64 characters
        api("POST", "/sessions", json={"key": f"ase_u{i}", "metadata": {"channel": f"{i:064d}"}})
    events = [event_from_entry(fields) for _, fields in stream.entries(sync_redis)]
    reports.apply_all(events)
    body = reports.read(A)
    assert_report_matches(body, shared_recount(sync_redis, A, DIMS), max_values=3)
    assert len(body["by_metadata"]["channel"]) == 3 and body["by_metadata_other"]["channel"] == 497
    assert sync_redis.hlen(KEYS.report(A)) < 30
    assert (sync_redis.memory_usage(KEYS.report(A)) or 0) < 4096


def row(sync_redis: redis.Redis, message: str, endpoint: str = SETTINGS_ENDPOINT) -> dict[str, Any]:
    stored = sync_redis.hget(KEYS.deliveries(endpoint)["rows"], message)
    assert stored is not None, f"no delivery row for {message}"
    found: dict[str, Any] = orjson.loads(stored)
    return found


def test_escalation_is_delivered_once_and_signed(
    api: Any,
    relay: Relay,
    worker: dramatiq.Worker,
    deliveries: None,
    receiver: Receiver,
    sync_redis: redis.Redis,
    client: TestClient,
    admin: dict[str, str],
) -> None:
    api("POST", "/sessions", json={"key": "ase_1", "metadata": {"priority": "high"}})
    api("PATCH", "/sessions/ase_1", json={"description": "not an escalation"})
    patched = api("PATCH", "/sessions/ase_1", json={"metadata": {"priority": "urgent"}})
    drain(relay)
    (delivery,) = receiver.wait_for(1)
    payload = Webhook(SECRET).verify(delivery.body, delivery.headers)  # raises on a bad signature
    assert payload["type"] == "session.escalated"
    event = payload["data"]
    assert event["type"] == "session.updated" and event["version"] == patched["version"] == 3
    assert event["changes"]["metadata"] == {"old": {"priority": "high"}, "new": {"priority": "urgent"}}
    assert event["rule"] == "priority" and event["rules"] == ["priority"]
    assert delivery.headers["webhook-id"] == escalation_id(event["event_id"])
    eventually(lambda: row(sync_redis, delivery.headers["webhook-id"])["status"] == "delivered")
    assert EscalationStore(sync_redis, KEYS).get(event["event_id"])["rules"] == "priority"
    assert report(client, admin)["escalations"] == {"total": 1}
    drain(relay)
    assert len(receiver.deliveries) == 1


@pytest.mark.parametrize(("retention_s", "kept_s"), [(3 * 86400, 3 * 86400), (60, 86400)])
def test_an_escalation_record_is_kept_once_as_long_as_the_log_and_at_least_a_day(
    sync_redis: redis.Redis, retention_s: int, kept_s: int
) -> None:
    """escalation_record.lua: recorded and counted once per event; expires with the event log (never
    sooner than a day: it is what makes a re-sent event a no-op)."""
    store = EscalationStore(sync_redis, KEYS, retention_s)
    event: Any = {
        "event_id": "evt_1",
        "agent_key": "agt_a",
        "session_key": "ase_1",
        "version": 2,
        "actor": "kid_1",
        "request_id": "req_1",
    }
    assert store.record(event, ["urgent"], b"first") == (True, b"first")
    assert store.record(event, ["other"], b"second") == (False, b"first")
    assert sync_redis.hget(KEYS.report("agt_a"), "escalations_total") == "1"
    # ...and it is an event, once: in the agent's outbox for the relay (the log, the feed)
    (escalated,) = [f for _, f in stream.entries(sync_redis) if f["type"] == "session.escalated"]
    assert escalated["event_id"] == "esc_1" and escalated["version"] == "2" and escalated["body"] == "first"
    assert kept_s * 1000 - 5000 < sync_redis.pttl(KEYS.escalation("agt_a", "evt_1")) <= kept_s * 1000


def test_receiver_failing_twice_still_ends_in_one_delivery(
    api: Any, relay: Relay, worker: dramatiq.Worker, deliveries: None, receiver: Receiver, sync_redis: redis.Redis
) -> None:
    receiver.fail_next(2)
    api("POST", "/sessions", json={"key": "ase_1"})
    api("PATCH", "/sessions/ase_1", json={"metadata": {"resolution_status": "escalated"}})
    drain(relay)
    receiver.wait_for(1)
    assert [d.status for d in receiver.deliveries] == [500, 500, 204]
    assert len({d.headers["webhook-id"] for d in receiver.deliveries}) == 1  # stable across retries
    assert len({d.body for d in receiver.deliveries}) == 1
    message = receiver.deliveries[0].headers["webhook-id"]
    eventually(lambda: row(sync_redis, message)["status"] == "delivered")
    assert row(sync_redis, message)["attempts"] == 3 and row(sync_redis, message)["last_status_code"] == 204


def test_receiver_down_past_the_retries_dead_letters_then_resends(
    api: Any,
    relay: Relay,
    worker: dramatiq.Worker,
    receiver: Receiver,
    sync_redis: redis.Redis,
    pipeline_settings: Settings,
    client: TestClient,
    admin: dict[str, str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    receiver.fail_next(1000)
    api("POST", "/sessions", json={"key": "ase_1"})
    api("PATCH", "/sessions/ase_1", json={"metadata": {"escalation_level": "tier_2"}})
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    configure_logging("INFO", "text")  # as a worker process does: our levels for the libraries' loggers
    root.addHandler(caplog.handler)
    stop = threading.Event()
    loop = threading.Thread(target=bootstrap.deliveries(pipeline_settings).run, args=(stop,), daemon=True)
    loop.start()
    try:
        drain(relay)
        dead_letters = f"/v2/webhook_endpoints/{SETTINGS_ENDPOINT}/deliveries?status=dead"
        eventually(lambda: client.get(dead_letters, headers=admin).json()["deliveries"], "no dead letter")
    finally:
        stop.set()
        loop.join(15)
        root.handlers[:], level = saved
        root.setLevel(level)
    (dead,) = client.get(dead_letters, headers=admin).json()["deliveries"]
    assert dead["status"] == "dead" and dead["attempts"] == 3 and dead["last_status_code"] == 500
    assert "HTTP 500" in dead["last_error"] and dead["next_attempt_at"] is None
    assert len(receiver.deliveries) == 3  # the first try and two retries
    # One warning per failed attempt, naming the destination; one error when it becomes a dead letter.
    attempts = [r for r in caplog.records if r.name == "agent_sessions.deliveries"]
    warnings = [r.getMessage() for r in attempts if r.levelno == logging.WARNING]
    errors = [r.getMessage() for r in attempts if r.levelno >= logging.ERROR]
    assert len(warnings) == 2 and all(dead["event_id"] in w and receiver.url in w and "HTTP 500" in w for w in warnings)
    assert len(errors) == 1 and "dead letter after 3 attempts" in errors[0] and "/redeliver" in errors[0]
    assert not any(r.exc_info for r in caplog.records) and not any("None" in m for m in warnings + errors)
    noisy = [r for r in caplog.records if r.name in ("httpx", "httpcore") or r.name.startswith("dramatiq")]
    assert not [r for r in noisy if r.levelno >= logging.INFO]  # the test client's own (httpx2) are not ours

    receiver.fail_next(0)
    redeliver = f"/v2/webhook_endpoints/{SETTINGS_ENDPOINT}/deliveries/{dead['event_id']}/redeliver"
    queued = client.post(redeliver, headers=admin)
    assert queued.status_code == 202 and queued.json()["status"] == "pending"
    assert queued.json()["attempts"] == 3  # a redelivery keeps the attempts made, on a fresh schedule
    stop.clear()
    loop = threading.Thread(target=bootstrap.deliveries(pipeline_settings).run, args=(stop,), daemon=True)
    loop.start()
    try:
        (delivery,) = receiver.wait_for(1)
        eventually(lambda: row(sync_redis, dead["event_id"])["status"] == "delivered")
    finally:
        stop.set()
        loop.join(15)
    assert delivery.headers["webhook-id"] == dead["event_id"]
    assert client.get(dead_letters, headers=admin).json()["deliveries"] == []
    assert row(sync_redis, dead["event_id"])["attempts"] == 4


def test_workers_poll_idle_queues_at_most_every_100_ms_however_started(redis_url: str) -> None:
    res = worker_context
    res.settings = Settings(redis_url=redis_url)
    plain = dramatiq.Worker(stub_broker)  # what a plain `dramatiq agent_sessions.workers` builds
    assert plain.worker_timeout == 1000
    lifecycle = next(m for m in stub_broker.middleware if isinstance(m, Lifecycle))
    lifecycle.before_worker_boot(stub_broker, plain)
    assert plain.worker_timeout == 100
    res.close()


def test_actors_are_declared_under_the_names_the_relay_uses() -> None:
    for actor, queue in (REPORT, ESCALATE, DELIVER_WEBHOOK):
        assert stub_broker.get_actor(actor).queue_name == queue


@pytest.mark.parametrize(
    ("before", "after", "names"),
    [
        ({"priority": "high"}, {"priority": "urgent"}, ["priority"]),
        ({"priority": "urgent"}, {"priority": "urgent", "x": 1}, []),
        ({}, {"resolution_status": "escalated"}, ["resolution_status"]),
        ({"escalation_level": "tier_1"}, {"escalation_level": "tier_2"}, ["escalation_level"]),
        ({"escalation_level": "tier_1"}, {}, []),  # a value disappearing de-escalates: no page
        ({"escalation_level": "tier_1"}, {"escalation_level": None}, ["escalation_level"]),
        ({}, {"escalation_level": 2}, ["escalation_level"]),
        ({"priority": "low"}, {"priority": "high"}, []),
    ],
)
def test_the_default_rules(before: dict[str, Any], after: dict[str, Any], names: list[str]) -> None:
    defaults = rules.defaults((("priority", "urgent"), ("resolution_status", "escalated")), ("escalation_level",))
    event = {"session": {"metadata": after}, "changes": {"metadata": {"old": before, "new": after}}}
    assert fired(defaults, event) == names


def test_several_relays_share_the_outbox_without_duplicates(api: Any, redis_url: str, sync_redis: redis.Redis) -> None:
    for i in range(60):
        api("POST", "/sessions", json={"key": f"ase_{i}"})
    stub_broker.flush_all()
    relays = [Relay(Outbox(sync_client(redis_url), KEYS), stub_broker, name=f"r{n}", block_ms=10) for n in range(3)]
    relays[0].ensure_group()
    counts = [0, 0, 0]

    def run(n: int) -> None:
        while (got := relays[n].step()) or stream.outbox_length(sync_redis):
            counts[n] += got

    threads = [threading.Thread(target=run, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sum(counts) == 60
    event_ids = [event["event_id"] for events in queued_events(REPORT[1]) for event in events]
    assert len(event_ids) == len(set(event_ids)) == 60


def test_report_endpoint_needs_a_key_for_the_agent(
    api: Any, client: TestClient, make_key: Any, admin: dict[str, str]
) -> None:
    assert client.get(f"/v2/agents/{A}/report").status_code == 401
    other = {"x-api-key": make_key("viewer", ("agt_other",))}
    assert client.get(f"/v2/agents/{A}/report", headers=other).status_code == 403
    viewer = {"x-api-key": make_key("viewer", (A,))}
    body = client.get(f"/v2/agents/{A}/report", headers=viewer).json()
    assert body == {
        "agent_key": A,
        "sessions": {"total": 0, "enabled": 0},
        "by_metadata": {d: {} for d in DIMS},
        "by_metadata_other": dict.fromkeys(DIMS, 0),
        "updates": {"total": 0},
        "escalations": {"total": 0},
    }
    assert client.get("/v2/agents/agt_missing/report", headers=admin).json()["code"] == "agent_not_found"


def test_a_delivery_message_of_the_previous_version_is_queued_for_the_settings_endpoint(
    api: Any, relay: Relay, worker: dramatiq.Worker, sync_redis: redis.Redis
) -> None:
    api("POST", "/sessions", json={"key": "ase_1"})
    api("PATCH", "/sessions/ase_1", json={"metadata": {"priority": "urgent"}})
    while relay.step():
        pass
    stub_broker.join(ESCALATE[1], fail_fast=False)
    (event_id,) = [k.split(":")[-1] for k in sync_redis.scan_iter(f"{KEYS.prefix}escalation:*")]
    sync_redis.delete(KEYS.deliveries(SETTINGS_ENDPOINT)["rows"])  # as if recorded by the previous version
    actor, queue = DELIVER_WEBHOOK  # what that version enqueued: one message per escalation
    stub_broker.enqueue(dramatiq.Message(queue_name=queue, actor_name=actor, args=(event_id,), kwargs={}, options={}))
    stub_broker.join(queue, fail_fast=False)
    assert row(sync_redis, escalation_id(event_id))["status"] == "pending"
