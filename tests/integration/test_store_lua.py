"""Every Lua script against a real Redis, through the Store that runs it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis
import redis.asyncio as aioredis

from agent_sessions.access.auth import Role, digest
from agent_sessions.access.ratelimit import Gate, Limits, Quota
from agent_sessions.access.store import Keyring
from agent_sessions.errors import (
    AgentAlreadyExists,
    AgentNotFound,
    RateLimited,
    SessionAlreadyExists,
    SessionNotFound,
    Unauthorized,
)
from agent_sessions.events.model import Origin, event_from_entry
from agent_sessions.redis.client import async_client
from agent_sessions.sessions.purge import Purger
from agent_sessions.sessions.store import Query, Store
from tests.support import stream
from tests.support.clock import until_redis_time
from tests.support.keys import KEYS

pytestmark = pytest.mark.anyio
A, S = "agt_a", "ase_1"
DELETER = Origin("kid_deleter", "req_delete")
ORIGIN = Origin("kid_test", "req_test")


@pytest.fixture
async def store(redis_url: str) -> AsyncIterator[Store]:
    client = async_client(redis_url, 2.0)
    yield Store(client, KEYS)
    await client.aclose()


async def make(store: Store, *sessions: str, enabled: bool = True) -> None:
    await store.create_agent(A, "Agent A", "", b"{}", True)
    for s in sessions:
        await store.create_session(A, s, ORIGIN, "", "d", b'{"p":1}', enabled)


def events(sync_redis: redis.Redis) -> list[dict[str, Any]]:
    return [event_from_entry(fields) for _, fields in stream.entries(sync_redis)]


async def redis_ms(client: aioredis.Redis) -> int:
    sec, usec = await client.time()
    return int(sec) * 1000 + int(usec) // 1000


async def test_agent_create_stamps_redis_time_and_indexes(store: Store, sync_redis: redis.Redis) -> None:
    before = await redis_ms(store.redis)
    fields = await store.create_agent(A, "Agent A", "desc", b'{"x":1}', False)
    after = await redis_ms(store.redis)
    assert fields["name"] == "Agent A" and fields["metadata"] == '{"x":1}' and fields["enabled"] == "0"
    assert before <= int(fields["created_at"]) <= after
    assert fields["updated_at"] == fields["created_at"]
    assert sync_redis.zrange(KEYS.agents(KEYS.tag(A)), 0, -1) == [A]
    with pytest.raises(AgentAlreadyExists):
        await store.create_agent(A, "again", "", b"{}", True)
    assert sync_redis.hget(KEYS.agent("agt_a"), "name") == "Agent A"


async def test_agent_update_changes_only_what_differs(store: Store) -> None:
    await make(store)
    created = await store.get_agent(A)
    changed, fields = await store.update_agent(A, {"name": "Agent A", "description": ""})
    assert not changed and fields == created
    changed, fields = await store.update_agent(A, {"name": "New", "enabled": "0"})
    assert changed and fields["name"] == "New" and fields["enabled"] == "0"
    with pytest.raises(AgentNotFound):
        await store.update_agent("agt_missing", {"name": "x"})


async def test_agent_delete_answers_at_once_and_the_purge_removes_sessions_in_bounded_steps(
    store: Store, sync_redis: redis.Redis
) -> None:
    await make(store, *(f"ase_{i}" for i in range(5)))
    await store.update_session(A, "ase_1", ORIGIN, {"description": "changed"})
    await store.create_agent("agt_b", "B", "", b"{}", True)
    await store.create_session("agt_b", "ase_1", ORIGIN, "", "", b"{}", True)
    events_before = stream.outbox_length(sync_redis)
    assert await store.delete_agent(A, DELETER) == 5
    # Gone at once for every reader and writer; the sessions wait, invisible, for the purge.
    with pytest.raises(AgentNotFound):
        await store.get_session(A, "ase_1")
    with pytest.raises(AgentNotFound):
        await store.update_session(A, "ase_1", ORIGIN, {"description": "x"})
    with pytest.raises(AgentNotFound):
        await store.create_session(A, "ase_new", ORIGIN, "", "", b"{}", True)
    with pytest.raises(AgentAlreadyExists):  # the key is free again once the purge is over
        await store.create_agent(A, "again", "", b"{}", True)
    assert stream.outbox_length(sync_redis) == events_before and sync_redis.zcard(KEYS.purge("agt_a")) == 5

    purger = Purger(sync_redis, KEYS, batch=2)
    assert [purger.step(), purger.step(), purger.step(), purger.step()] == [2, 2, 1, 0]
    deleted = [f for _, f in stream.entries(sync_redis)][events_before:]
    assert sorted(f["session_key"] for f in deleted) == [f"ase_{i}" for i in range(5)]
    assert all(f["type"] == "session.deleted" and f["actor"] == DELETER.actor for f in deleted)
    assert all(f["request_id"] == DELETER.request_id for f in deleted)
    assert len({f["event_id"] for f in deleted}) == 5
    assert {f["session_key"]: f["version"] for f in deleted}["ase_1"] == "3"  # created, updated, deleted
    partitions = {KEYS.tag(A), KEYS.tag("agt_b")}  # those of the deleted agent and of the one left
    assert sorted(sync_redis.keys("*")) == sorted(
        {
            KEYS.agent("agt_b"),
            KEYS.agents(KEYS.tag("agt_b")),
            KEYS.history("agt_b", "ase_1"),
            KEYS.history_bytes("agt_b", "ase_1"),
            # which search indexes are complete (all: each partition was empty at its first agent)
            *(KEYS.indexes(tag) for tag in partitions),
            *(KEYS.outbox(tag) for tag in partitions),
            KEYS.session("agt_b", "ase_1"),
            KEYS.sessions("agt_b"),
            KEYS.sessions_by("agt_b", "created"),
            KEYS.sessions("agt_b", True),
            KEYS.sessions_by("agt_b", "updated"),
        }
    )
    with pytest.raises(AgentNotFound):
        await store.delete_agent(A, ORIGIN)
    await store.create_agent(A, "again", "", b"{}", True)  # purge over: the key can be used again


async def test_session_create_checks_agent_and_duplicates(store: Store, sync_redis: redis.Redis) -> None:
    with pytest.raises(AgentNotFound):
        await store.create_session(A, S, ORIGIN, "", "", b"{}", True)
    assert sync_redis.keys("*") == []
    await make(store, "ase_on")
    await store.create_session(A, "ase_off", ORIGIN, "", "", b"{}", False)
    with pytest.raises(SessionAlreadyExists):
        await store.create_session(A, "ase_on", ORIGIN, "", "other", b"{}", True)
    assert sync_redis.hget(KEYS.session("agt_a", "ase_on"), "description") == "d"
    assert sync_redis.zrange(KEYS.sessions("agt_a"), 0, -1) == ["ase_off", "ase_on"]
    assert sync_redis.zrange(KEYS.sessions("agt_a", True), 0, -1) == ["ase_on"]
    assert sync_redis.zrange(KEYS.sessions("agt_a", False), 0, -1) == ["ase_off"]
    assert sync_redis.hget(KEYS.session("agt_a", "ase_on"), "version") == "1"


async def test_session_update_bumps_version_once_and_stamps_redis_time(store: Store, sync_redis: redis.Redis) -> None:
    await make(store, S)
    before = await store.get_session(A, S)
    until_redis_time(sync_redis, int(before["updated_at"]), "the create's millisecond")
    written = await store.update_session(A, S, ORIGIN, {"description": "new", "metadata": b'{"p":1}'})
    after = written.fields
    assert written.changed
    assert after["version"] == "2" and after["description"] == "new" and after["metadata"] == '{"p":1}'
    assert int(after["updated_at"]) > int(before["updated_at"])
    assert after["created_at"] == before["created_at"]
    assert int(after["updated_at"]) <= await redis_ms(store.redis)


async def test_session_update_reply_and_event_are_the_hash_as_stored(store: Store, sync_redis: redis.Redis) -> None:
    """The script builds the session after the write from what it read and wrote (no second read):
    its reply and the event's snapshot must be exactly the stored hash, every field, every change."""
    await make(store, S)
    changes: list[dict[str, str | bytes]] = [
        {"metadata": b'{"p":2}'},
        {"description": "two", "enabled": "0"},
        {"description": "three", "metadata": b'{"p":3}', "enabled": "1"},
    ]
    for n, change in enumerate(changes, start=2):
        written = await store.update_session(A, S, ORIGIN, change)
        stored = sync_redis.hgetall(KEYS.session(A, S))
        assert written.fields == stored and stored["version"] == str(n)
        _, entry = stream.newest(sync_redis)
        assert {k[2:]: v for k, v in entry.items() if k.startswith("s:")} == stored


async def test_session_update_with_equal_values_is_a_noop(store: Store) -> None:
    await make(store, S)
    before = await store.get_session(A, S)
    written = await store.update_session(A, S, ORIGIN, {"description": "d", "metadata": b'{"p":1}', "enabled": "1"})
    assert not written.changed and written.fields == before


async def test_session_update_moves_the_session_between_enabled_indexes(store: Store, sync_redis: redis.Redis) -> None:
    await make(store, S)
    await store.update_session(A, S, ORIGIN, {"enabled": "0"})
    assert sync_redis.zrange(KEYS.sessions("agt_a", True), 0, -1) == []
    assert sync_redis.zrange(KEYS.sessions("agt_a", False), 0, -1) == [S]
    await store.update_session(A, S, ORIGIN, {"enabled": "1"})
    assert sync_redis.zrange(KEYS.sessions("agt_a", True), 0, -1) == [S]
    assert sync_redis.zrange(KEYS.sessions("agt_a", False), 0, -1) == []


async def test_session_update_missing_agent_or_session_writes_nothing(store: Store, sync_redis: redis.Redis) -> None:
    with pytest.raises(AgentNotFound):
        await store.update_session(A, S, ORIGIN, {"description": "x"})
    await make(store)
    with pytest.raises(SessionNotFound):
        await store.update_session(A, S, ORIGIN, {"description": "x"})
    assert not sync_redis.exists(KEYS.session("agt_a", "ase_1"))


async def test_session_update_admits_first_and_writes_only_when_admitted(store: Store, sync_redis: redis.Redis) -> None:
    """session_update.lua with the gate (lua/_gate.lua) in front: one script, all or nothing."""
    await make(store, S)
    keyring = Keyring(sync_redis, KEYS)
    _, secret = keyring.create(Role.EDITOR, rate=1.0, burst=1)
    gate = Gate(store.redis, KEYS, Limits(rate=10, burst=10, failure_rate=1, failure_burst=5))
    quotas: list[Quota] = []
    admission = gate.admission(digest(secret), "10.0.0.1", quotas.append)

    written = await store.update_session(A, S, ORIGIN, {"description": "admitted"}, admission=admission)
    assert written.fields["version"] == "2" and written.fields["description"] == "admitted"
    assert quotas == [Quota(rate=1.0, burst=1, remaining=0, next_token_ms=1000)]

    with pytest.raises(RateLimited):  # the one token is taken
        await store.update_session(A, S, ORIGIN, {"description": "limited"}, admission=admission)
    assert len(quotas) == 2 and quotas[1].remaining == 0

    keyring.revoke(secret)
    with pytest.raises(Unauthorized):
        await store.update_session(A, S, ORIGIN, {"description": "revoked"}, admission=admission)
    with pytest.raises(Unauthorized):
        await store.update_session(
            A,
            S,
            ORIGIN,
            {"description": "unknown"},
            admission=gate.admission(digest("ask_" + "0" * 32), "10.0.0.1", quotas.append),
        )
    assert len(quotas) == 2  # a refused key has no quota to report
    assert sync_redis.hget(KEYS.session("agt_a", "ase_1"), "version") == "2"
    assert stream.outbox_length(sync_redis) == 2  # created, the admitted update; nothing else
    assert sync_redis.llen(KEYS.history("agt_a", "ase_1")) == 2
    assert sync_redis.get("as:rl:addr:10.0.0.1") is not None  # the failures were charged


async def test_session_update_admission_ignores_a_throttled_address_for_a_valid_key(
    store: Store, sync_redis: redis.Redis
) -> None:
    await make(store, S)
    _, secret = Keyring(sync_redis, KEYS).create(Role.EDITOR)
    gate = Gate(store.redis, KEYS, Limits(rate=10, burst=10, failure_rate=0.01, failure_burst=1))
    with pytest.raises(Unauthorized):
        await gate.admit(digest("ask_" + "0" * 32), "10.0.0.2")  # the address's one failure
    with pytest.raises(RateLimited) as refused:  # the address is throttled for invalid keys...
        await store.update_session(
            A,
            S,
            ORIGIN,
            {"description": "x"},
            admission=gate.admission(digest("ask_" + "1" * 32), "10.0.0.2", lambda _: None),
        )
    assert refused.value.reason == "address"
    assert sync_redis.hget(KEYS.session("agt_a", "ase_1"), "version") == "1"
    # ...and not for a valid one
    await store.update_session(
        A, S, ORIGIN, {"description": "x"}, admission=gate.admission(digest(secret), "10.0.0.2", lambda _: None)
    )
    assert sync_redis.hget(KEYS.session("agt_a", "ase_1"), "version") == "2"


async def test_concurrent_updates_each_bump_the_version_exactly_once(store: Store) -> None:
    await make(store, S)
    await asyncio.gather(*(store.update_session(A, S, ORIGIN, {"description": f"v{i}"}) for i in range(100)))
    assert (await store.get_session(A, S))["version"] == "101"


async def test_session_delete(store: Store, sync_redis: redis.Redis) -> None:
    await make(store, S)
    deleted = await store.delete_session(A, S, ORIGIN)
    assert deleted["description"] == "d"
    assert sync_redis.keys("as:session*") == []
    assert sync_redis.exists(KEYS.sessions("agt_a"), KEYS.sessions("agt_a", True)) == 0
    with pytest.raises(SessionNotFound):
        await store.delete_session(A, S, ORIGIN)


async def test_find_walks_the_index_in_order_with_filter(store: Store) -> None:
    await make(store, *(f"ase_{i:02d}" for i in range(7)))
    await store.create_session(A, "ase_x", ORIGIN, "", "", b"{}", False)
    seen: list[str] = []
    after: tuple[str, str] | None = None
    while True:
        page = await store.find_sessions(A, Query(after=after, limit=3))
        assert page.total == 8
        seen += [key for key, _ in page.items]
        if page.after is None:
            break
        after = page.after
    assert seen == [*(f"ase_{i:02d}" for i in range(7)), "ase_x"]
    off = await store.find_sessions(A, Query(enabled=False, limit=10))
    assert [k for k, _ in off.items] == ["ase_x"] and off.total == 1 and off.after is None
    assert [k for k, _ in (await store.find_sessions(A, Query(after=("", "ase_05"), enabled=True))).items] == ["ase_06"]
    with pytest.raises(AgentNotFound):
        await store.find_sessions("agt_missing", Query())


async def test_page_of_agents(store: Store) -> None:
    assert (await store.list_agents("", 10)).items == []
    for key in ("agt_c", "agt_a", "agt_b"):
        await store.create_agent(key, key, "", b"{}", True)
    page = await store.list_agents("", 2)
    assert [k for k, _ in page.items] == ["agt_a", "agt_b"] and page.next_member == "agt_b"
    assert [k for k, _ in (await store.list_agents("agt_b", 2)).items] == ["agt_c"]


async def test_scripts_reload_after_redis_forgets_them(store: Store, sync_redis: redis.Redis) -> None:
    await make(store, S)
    sync_redis.script_flush()
    assert (await store.update_session(A, S, ORIGIN, {"description": "after flush"})).changed


async def test_create_update_delete_emit_events_atomically(store: Store, sync_redis: redis.Redis) -> None:
    await make(store, S)
    await store.update_session(A, S, ORIGIN, {"description": "d", "enabled": "1"})  # no-op: no event
    await store.update_session(A, S, ORIGIN, {"description": "new", "metadata": b'{"p":2}', "enabled": "1"})
    await store.delete_session(A, S, Origin("kid_other", "req_2"))
    created, updated, deleted = events(sync_redis)
    assert created["type"] == "session.created" and created["version"] == 1 and created["changes"] == {}
    assert created["session"]["metadata"] == {"p": 1} and created["actor"] == "kid_test"
    assert updated["type"] == "session.updated" and updated["version"] == 2
    assert updated["changes"] == {
        "description": {"old": "d", "new": "new"},
        "metadata": {"old": {"p": 1}, "new": {"p": 2}},
    }
    assert updated["session"]["version"] == 2 and updated["request_id"] == "req_test"
    assert updated["occurred_at"].endswith("Z") and "." in updated["occurred_at"]
    assert deleted["type"] == "session.deleted" and deleted["version"] == 3
    assert deleted["session"]["description"] == "new" and deleted["actor"] == "kid_other"
    assert len({e["event_id"] for e in (created, updated, deleted)}) == 3


async def test_failed_writes_emit_nothing(store: Store, sync_redis: redis.Redis) -> None:
    for call in (
        store.create_session(A, S, ORIGIN, "", "", b"{}", True),
        store.update_session(A, S, ORIGIN, {"description": "x"}),
        store.delete_session(A, S, ORIGIN),
    ):
        with pytest.raises((AgentNotFound, SessionNotFound)):
            await call
    assert stream.outbox_length(sync_redis) == 0


async def test_agent_delete_emits_one_deletion_per_session(store: Store, sync_redis: redis.Redis) -> None:
    await make(store, "ase_1", "ase_2")
    await store.update_session(A, "ase_2", ORIGIN, {"description": "changed"})
    sync_redis.delete(*stream.outboxes())
    await store.delete_agent(A, ORIGIN)
    assert Purger(sync_redis, KEYS).step() == 2
    deleted = events(sync_redis)
    assert [(e["type"], e["session_key"], e["version"]) for e in deleted] == [
        ("session.deleted", "ase_1", 2),
        ("session.deleted", "ase_2", 3),
    ]
    assert len({e["event_id"] for e in deleted}) == 2
