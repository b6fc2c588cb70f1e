"""The Redis store for agents and sessions: key layout, Lua scripts, and nothing else.

Every write runs as one Lua script (see ``lua/*.lua`` for each script's KEYS, ARGV and layout), so a
write is all or nothing and timestamps come from Redis ``TIME``, never from an API server's clock.
Methods return raw hash fields (``dict[str, str]``); ``services`` turns them into resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from agent_sessions import lua
from agent_sessions.errors import (
    AgentAlreadyExists,
    AgentNotFound,
    IdempotencyKeyReused,
    PreconditionFailed,
    ServiceError,
    SessionAlreadyExists,
    SessionNotFound,
)
from agent_sessions.events import OUTBOX, Origin, new_event_id
from agent_sessions.ratelimit import Admission
from agent_sessions.redis_client import Batches, Script, outage_as_unavailable
from agent_sessions.reports import report_key

Fields = dict[str, str]
SCRIPTS = (
    "agent_create",
    "agent_update",
    "agent_delete",
    "agent_purge",
    "session_create",
    "session_update",
    "session_delete",
    "page",
    "history_page",
)


@dataclass(frozen=True)
class KeyLayout:
    prefix: str = "as:"

    @property
    def agents(self) -> str:
        return f"{self.prefix}agents"

    def agent(self, agent: str) -> str:
        return f"{self.prefix}agent:{agent}"

    def session_prefix(self, agent: str) -> str:
        return f"{self.prefix}session:{agent}:"

    def session(self, agent: str, session: str) -> str:
        return f"{self.prefix}session:{agent}:{session}"

    def sessions(self, agent: str, enabled: bool | None = None) -> str:
        suffix = {None: "", True: ":on", False: ":off"}[enabled]
        return f"{self.prefix}sessions:{agent}{suffix}"

    def history(self, agent: str, session: str) -> str:
        return f"{self.prefix}history:{agent}:{session}"

    def history_prefix(self, agent: str) -> str:
        return f"{self.prefix}history:{agent}:"

    def history_bytes(self, agent: str, session: str) -> str:
        return f"{self.prefix}history:{agent}:{session}:bytes"

    def idempotency(self, key_id: str, idempotency_key_digest: str) -> str:
        return f"{self.prefix}idem:{key_id}:{idempotency_key_digest}"

    def idempotency_index(self, key_id: str) -> str:
        return f"{self.prefix}idem:index:{key_id}"

    def idempotency_snapshots(self, agent: str, session: str) -> str:
        return f"{self.prefix}idem:snap:{agent}:{session}:"

    def purge(self, agent: str) -> str:
        return f"{self.prefix}purge:{agent}"

    @property
    def purges(self) -> str:
        return f"{self.prefix}purges"

    def session_indexes(self, agent: str) -> list[str]:
        return [self.sessions(agent), self.sessions(agent, True), self.sessions(agent, False)]


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key in force for one request: where its result lives, the request's fingerprint,
    how long it is kept, and the key's index of records with its bound (see lua/_idempotency.lua)."""

    record: str
    fingerprint: str
    ttl: int
    index: str = "as:idem:index:-"
    max_records: int = 1

    def args(self, snapshots: str) -> list[Any]:
        return [self.fingerprint, self.ttl, self.max_records, snapshots]


NO_IDEMPOTENCY = Idempotency("as:idem:-", "", 1)
NOT_ADMITTING = ("", "", "", "")  # session_update.lua's admission arguments when the gate ran already


@dataclass(frozen=True)
class Written:
    """A write's outcome: the session's fields, whether it changed anything, whether it was a replay."""

    fields: Fields
    changed: bool
    replayed: bool = False


@dataclass(frozen=True)
class Page:
    items: list[tuple[str, Fields]]
    total: int
    next_member: str | None


def _pairs(flat: list[str]) -> Fields:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class Store:
    def __init__(
        self,
        client: aioredis.Redis,
        layout: KeyLayout | None = None,
        history_max: int = 1000,
        batches: Batches | None = None,
        history_max_bytes: int = 1024 * 1024,
    ) -> None:
        self.redis = client
        self.keys = layout or KeyLayout()
        self.history_max = history_max
        self.history_max_bytes = history_max_bytes
        batches = batches or Batches(client)
        self._scripts = {name: Script(batches, lua.source(name)) for name in SCRIPTS}

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> list[Any]:
        return cast(list[Any], await self._scripts[script](keys, args))

    async def ping(self) -> bool:
        async with outage_as_unavailable():
            return bool(await self.redis.ping())

    # -- agents -------------------------------------------------------------------------------------

    async def create_agent(self, agent: str, name: str, description: str, metadata: bytes, enabled: bool) -> Fields:
        reply = await self._run(
            "agent_create",
            [self.keys.agent(agent), self.keys.agents, self.keys.purge(agent)],
            [agent, name, description, metadata, "1" if enabled else "0"],
        )
        if reply[0] == "exists":
            raise AgentAlreadyExists()
        if reply[0] == "purging":
            raise AgentAlreadyExists("an agent with this key is still being deleted; retry in a few seconds")
        return _pairs(reply[1:])

    async def get_agent(self, agent: str) -> Fields:
        async with outage_as_unavailable():
            fields = cast(Fields, await self.redis.hgetall(self.keys.agent(agent)))
        if not fields:
            raise AgentNotFound()
        return fields

    async def report_fields(self, agent: str) -> Fields:
        return await self._under_agent(agent, report_key(agent))

    async def update_agent(self, agent: str, changes: dict[str, str | bytes]) -> tuple[bool, Fields]:
        args = [item for pair in changes.items() for item in pair]
        reply = await self._run("agent_update", [self.keys.agent(agent)], args)
        if reply[0] == "not_found":
            raise AgentNotFound()
        return reply[0] == "ok", _pairs(reply[1:])

    async def delete_agent(self, agent: str, origin: Origin) -> int:
        """Delete the agent now; returns how many of its sessions are left for the purge (``Purger``)."""
        reply = await self._run(
            "agent_delete",
            [
                self.keys.agent(agent),
                self.keys.agents,
                *self.keys.session_indexes(agent),
                self.keys.purge(agent),
                self.keys.purges,
            ],
            [agent, origin.actor, origin.request_id],
        )
        if reply[0] == "not_found":
            raise AgentNotFound()
        return int(reply[1])

    async def list_agents(self, after: str, limit: int) -> Page:
        return await self._page([self.keys.agents], self.keys.agent(""), after, limit)

    # -- sessions -----------------------------------------------------------------------------------

    async def create_session(
        self,
        agent: str,
        session: str,
        origin: Origin,
        name: str,
        description: str,
        metadata: bytes,
        enabled: bool,
        idem: Idempotency = NO_IDEMPOTENCY,
    ) -> tuple[str, Written]:
        """Create; returns the session key (the first request's, on a replay) and the outcome."""
        reply = await self._run(
            "session_create",
            [
                self.keys.agent(agent),
                self.keys.session(agent, session),
                *self.keys.session_indexes(agent),
                OUTBOX,
                self.keys.history(agent, session),
                self.keys.history_bytes(agent, session),
                idem.record,
                idem.index,
            ],
            [
                agent,
                session,
                *_event_args(origin),
                name,
                description,
                metadata,
                "1" if enabled else "0",
                *idem.args(self.keys.idempotency_snapshots(agent, session)),
                self.history_max,
                self.history_max_bytes,
            ],
        )
        written = _outcome(reply)
        return written.fields.pop("key"), written

    async def get_session(self, agent: str, session: str) -> Fields:
        fields = await self._under_agent(agent, self.keys.session(agent, session))
        if not fields:
            raise SessionNotFound()
        return fields

    async def update_session(
        self,
        agent: str,
        session: str,
        origin: Origin,
        changes: dict[str, str | bytes],
        if_match: str = "",
        idem: Idempotency = NO_IDEMPOTENCY,
        admission: Admission | None = None,
    ) -> Written:
        """Apply ``changes`` (all or nothing) unless ``if_match`` ("*" or versions) fails; with an
        ``admission``, only if the gate, run first by the same script, admits the request."""
        keys = [
            self.keys.agent(agent),
            self.keys.session(agent, session),
            self.keys.sessions(agent, True),
            self.keys.sessions(agent, False),
            OUTBOX,
            self.keys.history(agent, session),
            self.keys.history_bytes(agent, session),
            idem.record,
            idem.index,
        ]
        args: list[Any] = [
            agent,
            session,
            *_event_args(origin),
            if_match,
            *idem.args(self.keys.idempotency_snapshots(agent, session)),
            self.history_max,
            self.history_max_bytes,
            *(admission.args if admission else NOT_ADMITTING),
        ]
        if admission:
            keys += admission.keys
        for field, value in changes.items():
            args += (field, value)
        reply = await self._run("session_update", keys, args)
        return _outcome(admission.settle(reply) if admission else reply)

    async def delete_session(self, agent: str, session: str, origin: Origin) -> Fields:
        reply = await self._run(
            "session_delete",
            [
                self.keys.agent(agent),
                self.keys.session(agent, session),
                *self.keys.session_indexes(agent),
                OUTBOX,
                self.keys.history(agent, session),
                self.keys.history_bytes(agent, session),
            ],
            [agent, session, *_event_args(origin)],
        )
        _raise_missing(reply[0])
        return _pairs(reply[1:])

    async def list_sessions(self, agent: str, enabled: bool | None, after: str, limit: int) -> Page:
        keys = [self.keys.sessions(agent, enabled), self.keys.agent(agent)]
        return await self._page(keys, self.keys.session_prefix(agent), after, limit)

    async def history(self, agent: str, session: str, below: int | None, limit: int) -> tuple[list[str], int]:
        """Up to ``limit`` history entries (JSON) newest first, with versions below ``below``; and the count."""
        reply = await self._run(
            "history_page",
            [self.keys.agent(agent), self.keys.session(agent, session), self.keys.history(agent, session)],
            ["" if below is None else below, limit],
        )
        _raise_missing(reply[0])
        return reply[2:], int(reply[1])

    async def _under_agent(self, agent: str, key: str) -> Fields:
        """A hash that belongs to an agent, read in one round trip with the agent's existence."""
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.agent(agent))
            pipe.hgetall(key)
            agent_exists, fields = await pipe.execute()
        if not agent_exists:
            raise AgentNotFound()
        return cast(Fields, fields)

    async def _page(self, keys: list[str], prefix: str, after: str, limit: int) -> Page:
        reply = await self._run("page", keys, [prefix, after, limit])
        if reply[0] == "not_found":
            raise AgentNotFound()
        items = [(member, _pairs(flat)) for member, flat in reply[3:] if flat]
        return Page(items=items, total=int(reply[1]), next_member=reply[2] or None)


def _event_args(origin: Origin) -> list[str]:
    return [new_event_id(), origin.actor, origin.request_id]


def _outcome(reply: list[Any]) -> Written:
    """A create/update script's reply -> its outcome, or the domain error it stands for."""
    replayed = reply[0] == "replay"
    if replayed:
        reply = reply[1:]
    status = reply[0]
    try:
        if status == "idempotency_mismatch":
            raise IdempotencyKeyReused()
        if status == "precondition_failed":
            raise PreconditionFailed()
        if status == "exists":
            raise SessionAlreadyExists()
        _raise_missing(status)
    except ServiceError as exc:
        exc.replayed = replayed  # a stored error answer is replayed as such (Idempotent-Replayed)
        raise
    return Written(_pairs(reply[1:]), status == "ok", replayed)


def _raise_missing(status: str) -> None:
    if status == "agent_not_found":
        raise AgentNotFound()
    if status == "session_not_found":
        raise SessionNotFound()
