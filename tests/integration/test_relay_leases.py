"""Relays share the partitions' outboxes through leases (``redis/leases.py``, ``lua/relay_lease.lua``),
on a real Redis: a fair share each, a dead relay's partitions taken over once its leases expire, with
what it had read and not acknowledged; relays started and killed while sessions are written relay
every event, each session's in version order, and the reports built from what they queued equal a
recount."""

from __future__ import annotations

import asyncio
import contextlib
import random
import threading
from typing import Any

import dramatiq
import pytest
import redis

from agent_sessions.events.leases import Leases
from agent_sessions.events.model import REPORT, Origin
from agent_sessions.events.outbox import Outbox
from agent_sessions.events.relay import Relay
from agent_sessions.events.store import LogWriter
from agent_sessions.redis.client import async_client, sync_client
from agent_sessions.redis.keys import Keys
from agent_sessions.reports.store import ReportStore
from agent_sessions.sessions.store import Store
from tests.support import stream
from tests.support.clock import until_redis_time
from tests.support.keys import KEYS
from tests.support.recount import assert_report_matches, recount
from tests.support.stub import stub_broker
from tests.support.wait import eventually

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

LEASE_MS = 600
ORIGIN = Origin("kid_t", "req_t")


def owned_by(leases: list[Leases]) -> list[set[int]]:
    return [set(lease.owned) for lease in leases]


def test_relays_share_the_partitions_fairly_and_take_over_a_dead_ones(sync_redis: redis.Redis) -> None:
    keys = Keys(partitions=8)
    relays = [Leases(sync_redis, keys, f"r{n}", LEASE_MS) for n in range(3)]
    for _ in range(2):
        for relay in relays:
            relay.refresh()
    shares = owned_by(relays)
    assert set().union(*shares) == set(range(8)) and sum(map(len, shares)) == 8  # each partition once
    assert max(map(len, shares)) <= 3  # 8 / 3, rounded up

    # r0 dies: it renews nothing, and stops counting as alive once Redis's clock passes its last word.
    until_redis_time(sync_redis, sync_redis.zscore(keys.relays, "r0") or 0, "r0's liveness")
    for _ in range(2):
        for relay in relays[1:]:
            relay.refresh()
    assert owned_by(relays)[1] | owned_by(relays)[2] == set(range(8))
    assert not owned_by(relays)[1] & owned_by(relays)[2]

    joined = Leases(sync_redis, keys, "r3", LEASE_MS)  # a new relay: the others give up above 8 / 3
    for _ in range(2):
        for relay in (*relays[1:], joined):
            relay.refresh()
    shares = owned_by([*relays[1:], joined])
    assert set().union(*shares) == set(range(8)) and max(map(len, shares)) <= 3 and joined.owned

    relays[1].release()  # a relay stopping gives its leases back at once
    for relay in (relays[2], joined):
        relay.refresh()
    assert relays[2].owned | joined.owned == set(range(8)) and not relays[1].owned
    assert sync_redis.zrange(keys.relays, 0, -1) == sorted(["r2", "r3"])


def relayer(redis_url: str, name: str, dies: threading.Event | None = None) -> Relay:
    client = sync_client(redis_url)
    relay = Relay(
        Outbox(client, KEYS),
        stub_broker,
        name=name,
        claim_idle_ms=LEASE_MS,
        block_ms=20,
        log=LogWriter(client, KEYS),
        leases=Leases(client, KEYS, name, LEASE_MS),
    )
    if dies is not None:
        acknowledge = relay.ack

        def ack(entry_ids: list[str]) -> None:  # killed between enqueuing a batch and acknowledging it
            if dies.is_set():
                raise SystemExit("killed")
            acknowledge(entry_ids)

        relay.ack = ack  # type: ignore[method-assign]
    return relay


def run(relay: Relay, stop: threading.Event) -> threading.Thread:
    def loop() -> None:
        with contextlib.suppress(SystemExit):  # dead: its leases are left to expire
            relay.run(stop)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    return thread


def test_relays_started_and_killed_at_will_relay_every_event_in_order(redis_url: str, sync_redis: redis.Redis) -> None:
    stub_broker.flush_all()
    agents = [f"agt_{n}" for n in range(12)]
    stops = {name: threading.Event() for name in ("r0", "r1", "r2")}
    dies = threading.Event()
    relays = {"r0": relayer(redis_url, "r0", dies), "r1": relayer(redis_url, "r1"), "r2": relayer(redis_url, "r2")}
    relays["r0"].ensure_group()
    threads = {name: run(relay, stops[name]) for name, relay in relays.items() if name != "r2"}

    async def write() -> int:
        client = async_client(redis_url, 2.0)
        store = Store(client, KEYS, dimensions=("priority",))
        written = 0
        try:
            for agent in agents:
                await store.create_agent(agent, agent, "", b"{}", True)
            for session in range(3):
                for agent in agents:
                    await store.create_session(agent, f"ase_{session}", ORIGIN, "", "", b"{}", True)
                    written += 1
            for n in range(10):
                if n == 3:
                    dies.set()  # r0 dies mid-batch
                if n == 5:
                    threads["r2"] = run(relays["r2"], stops["r2"])  # r2 starts
                for agent in agents:
                    priority = random.choice(["low", "high", "urgent"])
                    metadata = f'{{"priority":"{priority}"}}'.encode()
                    changes: dict[str, str | bytes] = {"metadata": metadata, "description": str(n)}
                    await store.update_session(agent, f"ase_{n % 3}", ORIGIN, changes)
                    written += 1
                await asyncio.sleep(0.05)
        finally:
            await client.aclose()
        return written

    written = asyncio.run(write())
    eventually(lambda: stream.outbox_length(sync_redis) == 0, "the outboxes were not drained", 30)
    for stop in stops.values():
        stop.set()
    for thread in threads.values():
        thread.join(10)

    queued: list[dict[str, Any]] = []
    queue = stub_broker.queues[REPORT[1]]
    while not queue.empty():
        queued += dramatiq.Message.decode(queue.get_nowait()).args[0]
        queue.task_done()
    logged = {fields["event_id"] for _, fields in stream.entries(sync_redis, KEYS.events)}
    assert len(logged) == written and {e["event_id"] for e in queued} == logged  # none lost, once in the log
    assert len(queued) > written  # r0's last batch was queued again by the relay that took its partitions
    first_seen: dict[tuple[str, str], list[int]] = {}
    seen: set[str] = set()
    for event in queued:  # a batch r0 queued and never acknowledged is queued again by its successor
        if event["event_id"] not in seen:
            seen.add(event["event_id"])
            first_seen.setdefault((event["agent_key"], event["session_key"]), []).append(event["version"])
    assert all(versions == sorted(versions) for versions in first_seen.values())

    reports = ReportStore(sync_redis, KEYS, ("priority",))
    reports.apply_all(queued)  # exactly once per event, as the actor does, duplicates and all
    for agent in agents:
        report = reports.read(agent)
        assert_report_matches(report, recount(sync_redis, agent, ("priority",)))


@pytest.fixture(autouse=True)
def _leave_no_relay(sync_redis: redis.Redis) -> None:
    sync_redis.delete(KEYS.relays)
