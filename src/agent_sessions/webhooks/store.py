"""Webhook endpoints, their deliveries and the agents' escalation rules, in Redis.

``Webhooks`` is the asyncio side (the API, the delivery loop, the CLI); ``Fanout`` the synchronous side
that queues deliveries (the outbox relay, the escalation actor). Both queue with the same script
(``lua/delivery_enqueue.lua``), one call per (endpoint, message), idempotent on the message id.
Deliveries of the endpoint the settings configure (``SETTINGS_ENDPOINT``) live under its id like any
other's; it has no record in Redis.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import orjson
import redis
import redis.asyncio as aioredis

from agent_sessions.config import Settings
from agent_sessions.redis.client import Batches, execute_async, first_error, replica_acks
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.outages import outage_as_unavailable
from agent_sessions.redis.scripts import Call, Script, SyncScript
from agent_sessions.webhooks import lua
from agent_sessions.webhooks.lua import DELIVERY_ENQUEUE
from agent_sessions.webhooks.model import (
    SETTINGS_ENDPOINT,
    DeliveryStatus,
    Fields,
    Message,
    Subscription,
    subscription,
)

log = logging.getLogger("agent_sessions.webhooks")
# A delivery keeps its newest attempts, redeliveries included: with WEBHOOK_LOG_MAX rows an endpoint
# keeps at most that many times this many attempts (each about a hundred bytes).
ATTEMPTS_KEPT = 20


@dataclass(frozen=True)
class Bounds:
    """Per endpoint: rows not yet delivered (new messages past it are refused and counted), and rows
    in all (the oldest delivered are dropped); how many endpoints may exist."""

    backlog_max: int = 10_000
    log_max: int = 10_000
    endpoints_max: int = 100

    @classmethod
    def of(cls, settings: Settings) -> Bounds:
        return cls(settings.webhook_backlog_max, settings.webhook_log_max, settings.webhook_endpoints_max)


CLAIMED_FIELDS = ("url", "secrets", "max_retries", "min_backoff_ms", "max_backoff_ms")


@dataclass(frozen=True)
class Claimed:
    fields: Fields  # the endpoint's delivery fields as they are at this claim ({} without a record)
    messages: list[tuple[str, bytes]]  # (message id, body)


def enqueue_call(keys: Keys, endpoint: str, message: Message, bounds: Bounds, force: bool = False) -> Call:
    return DELIVERY_ENQUEUE.positions(
        {**keys.deliveries(endpoint), "endpoint": keys.webhook_endpoint(endpoint), "attempts": keys.attempts(endpoint)},
        {
            "id": message.id,
            "type": message.type,
            "body": message.body,
            "backlog_max": bounds.backlog_max,
            "log_max": bounds.log_max,
            "check_endpoint": "0" if endpoint == SETTINGS_ENDPOINT else "1",
            "force": "1" if force else "0",
        },
    )


class Webhooks:
    def __init__(self, client: aioredis.Redis, keys: Keys, bounds: Bounds) -> None:
        self.redis = client
        self.keys = keys
        self.bounds = bounds
        batches = Batches(client)
        self.acks = replica_acks(client)
        self._create = Script(batches, lua.WEBHOOK_ENDPOINT_CREATE)
        self._update = Script(batches, lua.WEBHOOK_ENDPOINT_UPDATE)
        self._delete = Script(batches, lua.WEBHOOK_ENDPOINT_DELETE)
        self._rotate = Script(batches, lua.WEBHOOK_SECRET_ROTATE)
        self._enqueue = Script(batches, DELIVERY_ENQUEUE)
        self._claim = Script(batches, lua.DELIVERY_CLAIM)
        self._result = Script(batches, lua.DELIVERY_RESULT)
        self._page = Script(batches, lua.DELIVERIES_PAGE)
        self._put_rules = Script(batches, lua.RULES_PUT)

    # -- endpoints -----------------------------------------------------------------------------------

    async def create(self, endpoint: str, fields: Fields) -> tuple[str, Fields]:
        """("ok", the record as stored), or ("exists" | "full", {}). The list of endpoints and the record
        are two slots on a Redis Cluster, so two steps: the id is listed and the count checked (over the
        bound, two made at once, it is taken back: the bound holds whatever runs concurrently), then
        the record is made. Stopped between them, the list names an id with no record, which every
        reader skips (and which counts toward the bound until deleted); never a record no one lists."""
        listing = self.keys.webhook_endpoints
        async with outage_as_unavailable():
            commands = [("ZADD", listing, int(time.time() * 1000), endpoint), ("ZCARD", listing)]
            _, listed = first_error(await execute_async(self.redis, commands, [listing, listing], self.acks))
            if listed > self.bounds.endpoints_max:
                await self.redis.zrem(listing, endpoint)
                return "full", {}
        reply = await self._create(
            {"endpoint": self.keys.webhook_endpoint(endpoint)}, {}, more_args=[i for p in fields.items() for i in p]
        )
        if reply[0] != "ok":
            return cast(str, reply[0]), {}
        await self._changed()
        return "ok", _pairs(reply[1:])

    async def _changed(self) -> None:
        """A subscription changed (made, changed, deleted): the version the relays compare with theirs,
        bumped before the change is answered, so every event committed after the answer is matched
        against the change (``Fanout.subscriptions``)."""
        version = self.keys.webhook_endpoints_version
        async with outage_as_unavailable():
            first_error(await execute_async(self.redis, [("INCR", version)], [version], self.acks))

    async def get(self, endpoint: str) -> Fields | None:
        async with outage_as_unavailable():
            found = cast(Fields, await self.redis.hgetall(self.keys.webhook_endpoint(endpoint)))
        return found or None

    async def ids(self) -> list[str]:
        async with outage_as_unavailable():
            return cast(list[str], await self.redis.zrange(self.keys.webhook_endpoints, 0, -1))

    async def all(self) -> list[tuple[str, Fields]]:
        """Every endpoint, oldest first (at most ``endpoints_max``: one pipeline)."""
        ids = await self.ids()
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            for endpoint in ids:
                pipe.hgetall(self.keys.webhook_endpoint(endpoint))
            found = cast(list[Fields], await pipe.execute())
        return [(endpoint, fields) for endpoint, fields in zip(ids, found, strict=True) if fields]

    async def update(self, endpoint: str, fields: Fields) -> Fields | None:
        reply = await self._update(
            {"endpoint": self.keys.webhook_endpoint(endpoint)}, {}, more_args=[i for p in fields.items() for i in p]
        )
        if reply[0] == "endpoint_not_found":
            return None
        await self._changed()
        return _pairs(reply[1:])

    async def delete(self, endpoint: str) -> bool:
        """The endpoint with its delivery log (one script), then its place in the list (another slot)."""
        keys: lua.DeliveryEnqueueKeys = {
            **self.keys.deliveries(endpoint),
            "endpoint": self.keys.webhook_endpoint(endpoint),
            "attempts": self.keys.attempts(endpoint),
        }
        deleted = bool(await self._delete(keys, {}))
        listing = self.keys.webhook_endpoints
        async with outage_as_unavailable():
            first_error(await execute_async(self.redis, [("ZREM", listing, endpoint)], [listing], self.acks))
        await self._changed()
        return deleted

    async def rotate(self, endpoint: str, secret: str, grace_ms: int, max_secrets: int) -> Fields | None:
        reply = await self._rotate(
            {"endpoint": self.keys.webhook_endpoint(endpoint)},
            {"new_secret": secret, "grace_ms": grace_ms, "max_secrets": max_secrets},
        )
        return None if reply[0] == "endpoint_not_found" else _pairs(reply[1:])

    # -- deliveries ----------------------------------------------------------------------------------

    async def enqueue(self, endpoint: str, messages: Sequence[Message], force: bool = False) -> list[str]:
        """Queue messages for one endpoint; per message "queued", "exists", "full" or "no_endpoint"."""
        if not messages:
            return []
        calls = [enqueue_call(self.keys, endpoint, m, self.bounds, force) for m in messages]
        return [cast(str, reply) for reply in await self._enqueue.many(calls)]

    async def page(
        self, endpoint: str, status: DeliveryStatus | None, before: str, limit: int
    ) -> tuple[list[Any], str]:
        keys = self.keys.deliveries(endpoint)
        index = keys["log"] if status is None else keys[status]
        reply = await self._page({"log": index, "rows": keys["rows"]}, {"before": before, "limit": limit})
        return [orjson.loads(row) for row in reply[1:]], cast(str, reply[0])

    async def attempts(self, endpoint: str, message: str) -> list[dict[str, Any]] | None:
        """The delivery's attempts, oldest first (the newest ``ATTEMPTS_KEPT``); None without a row."""
        rows = self.keys.deliveries(endpoint)["rows"]
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hexists(rows, message)
            pipe.hget(self.keys.attempts(endpoint), message)
            exists, stored = await pipe.execute()
        if not exists:
            return None
        found: list[dict[str, Any]] = orjson.loads(stored) if stored else []
        return found

    async def row(self, endpoint: str, message: str) -> dict[str, Any] | None:
        """The message's row, with its body (None once delivered); None without a row."""
        keys = self.keys.deliveries(endpoint)
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.hget(keys["rows"], message)
            pipe.hget(keys["bodies"], message)
            stored, body = await pipe.execute()
        if stored is None:
            return None
        row: dict[str, Any] = orjson.loads(stored)
        row["body"] = body
        return row

    async def claim(self, wanted: Sequence[tuple[str, int]], lease_ms: int) -> dict[str, Claimed]:
        """Lease up to ``count`` due messages of each endpoint, with the endpoint's URL and secrets: one
        script call per endpoint (one slot each), sent together (``Batches``)."""
        calls = []
        for endpoint, count in wanted:
            deliveries = self.keys.deliveries(endpoint)
            keys: lua.DeliveryClaimKeys = {
                "queue": deliveries["queue"],
                "bodies": deliveries["bodies"],
                "endpoint": self.keys.webhook_endpoint(endpoint),
            }
            calls.append(self._claim(keys, {"lease_ms": lease_ms, "count": count}))
        reply = await asyncio.gather(*calls)
        n = len(CLAIMED_FIELDS)
        return {
            endpoint: Claimed(
                {k: v for k, v in zip(CLAIMED_FIELDS, taken[:n], strict=True) if v},
                [(taken[i], taken[i + 1].encode()) for i in range(n, len(taken), 2)],
            )
            for (endpoint, _), taken in zip(wanted, reply, strict=True)
        }

    async def result(
        self,
        endpoint: str,
        message: str,
        status_code: int | None,
        error: str,
        tries: int,
        backoff_ms: tuple[int, int],
        duration_ms: int = 0,
    ) -> str:
        """Record one attempt ("" error: delivered), in its delivery's attempts too; returns the row's
        status after it ("gone": deleted)."""
        outcome = "failed" if error else "delivered"
        code = "" if status_code is None else str(status_code)
        reply = await self._result(
            {**self.keys.deliveries(endpoint), "attempts": self.keys.attempts(endpoint)},
            {
                "id": message,
                "outcome": outcome,
                "status_code": code,
                "error": error,
                "tries": tries,
                "min_backoff_ms": backoff_ms[0],
                "max_backoff_ms": backoff_ms[1],
                "duration_ms": duration_ms,
                "attempts_kept": ATTEMPTS_KEPT,
            },
        )
        counted = reply[2] if len(reply) > 2 else ""
        if counted:  # the counters are another slot: added after, lost only if this process dies between
            async with outage_as_unavailable():
                pipe = self.redis.pipeline(transaction=False)
                pipe.hincrby(self.keys.counters, f"webhooks:{counted}", 1)
                if counted == "dead_lettered":
                    pipe.hincrby(self.keys.counters, "webhooks:failed", 1)
                await pipe.execute()
        return cast(str, reply[0])

    # -- what a redelivery or a recovery reads -------------------------------------------------------

    async def escalation_bodies(self, events: Sequence[tuple[str | None, str]]) -> list[bytes | None]:
        """The bodies of the escalation records of (agent, event id) pairs; an agent of None (a
        redelivery knows only the message id) is looked for in every partition."""
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            counts = []
            for agent, event_id in events:
                keys = self.keys.escalations_of(event_id) if agent is None else [self.keys.escalation(agent, event_id)]
                counts.append(len(keys))
                for key in keys:
                    pipe.hget(key, "body")
            found = iter(await pipe.execute())
        bodies = [next((body for body in [next(found) for _ in range(n)] if body is not None), None) for n in counts]
        return [None if body is None else body.encode() for body in bodies]

    # -- escalation rules ----------------------------------------------------------------------------

    async def rules(self, agent: str) -> str | None:
        async with outage_as_unavailable():
            return cast(str | None, await self.redis.get(self.keys.escalation_rules(agent)))

    async def put_rules(self, agent: str, encoded: bytes) -> bool:
        """Store an agent's rules if the agent exists (one script); False if it does not."""
        keys: lua.RulesPutKeys = {"agent": self.keys.agent(agent), "rules": self.keys.escalation_rules(agent)}
        return bool(await self._put_rules(keys, {"rules": encoded}))

    async def agent_exists(self, agent: str) -> bool:
        async with outage_as_unavailable():
            return bool(await self.redis.exists(self.keys.agent(agent)))


class Fanout:
    """The synchronous side (the relay, the escalation actor): who subscribes to what, the agents'
    rules, and queuing deliveries in one pipeline per batch.

    The subscriptions are cached, with the version of the endpoints they were read at: every change of
    an endpoint bumps the version before it is answered (``Webhooks._changed``), and each batch reads
    the version (one GET) after its events were read, so the relay always knows every change answered
    before those events were committed. The list itself is read again only when the version moved.
    Each event is then matched against the subscription in force when it was committed
    (``Subscription.wants``: an endpoint's record keeps the moment of its last change and what it
    subscribed to before, one change back): an endpoint gets every matching event committed after its create was
    answered, none committed after its disable (or a change of filters) was answered, and the events
    committed before a change as they were subscribed then. A deleted endpoint gets nothing more (its
    queue goes with it). Times are Redis TIME; on a Redis Cluster the boundary is as exact as the
    clocks of the endpoint's node and the event's node agree."""

    def __init__(self, client: redis.Redis, keys: Keys, bounds: Bounds, fixed: Sequence[Subscription] = ()) -> None:
        """``fixed``: subscriptions with no record (ESCALATION_WEBHOOK_URL's)."""
        self.redis = client
        self.bounds = bounds
        self.keys = keys
        self.fixed = list(fixed)
        self._enqueue = SyncScript(client, DELIVERY_ENQUEUE)
        self._subscriptions: list[Subscription] = []
        self._version: str | None = None  # of the cached subscriptions (None: not read yet)

    def subscriptions(self) -> list[Subscription]:
        """The subscriptions as of now: call it after reading the events they are for."""
        version = cast(str | None, self.redis.get(self.keys.webhook_endpoints_version)) or "0"
        if version != self._version:
            ids = cast(list[str], self.redis.zrange(self.keys.webhook_endpoints, 0, -1))
            pipe = self.redis.pipeline(transaction=False)
            for endpoint in ids:
                pipe.hgetall(self.keys.webhook_endpoint(endpoint))
            found = zip(ids, cast(list[Fields], pipe.execute()), strict=True)
            self._subscriptions = [subscription(e, fields) for e, fields in found if fields] + self.fixed
            self._version = version
        return self._subscriptions

    def queue(self, deliveries: Sequence[tuple[str, Message]]) -> None:
        """Queue each (endpoint, message); one past its endpoint's backlog bound is logged, not queued
        (the event log still has it: a recovery sends it later)."""
        if not deliveries:
            return
        calls = [enqueue_call(self.keys, endpoint, message, self.bounds) for endpoint, message in deliveries]
        for (endpoint, message), outcome in zip(deliveries, self._enqueue.many(calls), strict=True):
            if outcome == "full":
                log.error(
                    "webhook endpoint %s has WEBHOOK_BACKLOG_MAX undelivered messages: %s not queued "
                    "(POST /v2/webhook_endpoints/%s/recover sends it once the endpoint catches up)",
                    endpoint, message.id, endpoint,
                )  # fmt: skip

    def rules(self, agents: Sequence[str]) -> dict[str, str | None]:
        pipe = self.redis.pipeline(transaction=False)
        for agent in agents:
            pipe.get(self.keys.escalation_rules(agent))
        return dict(zip(agents, cast(list[str | None], pipe.execute()), strict=True))


def _pairs(flat: list[str]) -> Fields:
    return dict(zip(flat[::2], flat[1::2], strict=True))
