"""The Redis store for agents and sessions: key layout, Lua scripts, and nothing else.

Every write runs as one Lua script (see ``lua/*.lua`` for each script's KEYS, ARGV and layout), so a
write is all or nothing and timestamps come from Redis ``TIME``, never from an API server's clock.
Methods return raw hash fields (``dict[str, str]``); ``services`` turns them into resources.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis
from redis.commands.core import AsyncScript

from agent_sessions import lua
from agent_sessions.errors import (
    AgentAlreadyExists,
    AgentNotFound,
    SessionAlreadyExists,
    SessionNotFound,
)
from agent_sessions.events import OUTBOX, Origin, new_event_id
from agent_sessions.redis_client import outage_as_unavailable
from agent_sessions.reports import report_key

Fields = dict[str, str]
SCRIPTS = (
    "agent_create",
    "agent_update",
    "agent_delete",
    "session_create",
    "session_update",
    "session_delete",
    "page",
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

    def session_indexes(self, agent: str) -> list[str]:
        return [self.sessions(agent), self.sessions(agent, True), self.sessions(agent, False)]


@dataclass(frozen=True)
class Page:
    items: list[tuple[str, Fields]]
    total: int
    next_member: str | None


def _pairs(flat: list[str]) -> Fields:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class Store:
    def __init__(self, client: aioredis.Redis, layout: KeyLayout | None = None) -> None:
        self.redis = client
        self.keys = layout or KeyLayout()
        self._scripts: dict[str, AsyncScript] = {name: client.register_script(lua.source(name)) for name in SCRIPTS}

    async def _run(self, script: str, keys: list[str], args: list[Any]) -> list[Any]:
        async with outage_as_unavailable():
            return cast(list[Any], await self._scripts[script](keys=keys, args=args))

    async def ping(self) -> bool:
        async with outage_as_unavailable():
            return bool(await self.redis.ping())

    # -- agents -------------------------------------------------------------------------------------

    async def create_agent(self, agent: str, name: str, description: str, metadata: bytes, enabled: bool) -> Fields:
        reply = await self._run(
            "agent_create",
            [self.keys.agent(agent), self.keys.agents],
            [agent, name, description, metadata, "1" if enabled else "0"],
        )
        if reply[0] == "exists":
            raise AgentAlreadyExists()
        return _pairs(reply[1:])

    async def get_agent(self, agent: str) -> Fields:
        async with outage_as_unavailable():
            fields = cast(Fields, await self.redis.hgetall(self.keys.agent(agent)))
        if not fields:
            raise AgentNotFound()
        return fields

    async def report_fields(self, agent: str) -> Fields:
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.agent(agent))
            pipe.hgetall(report_key(agent))
            agent_exists, fields = await pipe.execute()
        if not agent_exists:
            raise AgentNotFound()
        return cast(Fields, fields)

    async def update_agent(self, agent: str, changes: dict[str, str | bytes]) -> tuple[bool, Fields]:
        args = [item for pair in changes.items() for item in pair]
        reply = await self._run("agent_update", [self.keys.agent(agent)], args)
        if reply[0] == "not_found":
            raise AgentNotFound()
        return reply[0] == "ok", _pairs(reply[1:])

    async def delete_agent(self, agent: str, origin: Origin) -> int:
        reply = await self._run(
            "agent_delete",
            [self.keys.agent(agent), self.keys.agents, *self.keys.session_indexes(agent), OUTBOX],
            [agent, self.keys.session_prefix(agent), *_event_args(origin)],
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
    ) -> Fields:
        reply = await self._run(
            "session_create",
            [
                self.keys.agent(agent),
                self.keys.session(agent, session),
                *self.keys.session_indexes(agent),
                OUTBOX,
            ],
            [agent, session, *_event_args(origin), name, description, metadata, "1" if enabled else "0"],
        )
        if reply[0] == "agent_not_found":
            raise AgentNotFound()
        if reply[0] == "exists":
            raise SessionAlreadyExists()
        return _pairs(reply[1:])

    async def get_session(self, agent: str, session: str) -> Fields:
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.agent(agent))
            pipe.hgetall(self.keys.session(agent, session))
            agent_exists, fields = await pipe.execute()
        if not agent_exists:
            raise AgentNotFound()
        if not fields:
            raise SessionNotFound()
        return cast(Fields, fields)

    async def update_session(
        self, agent: str, session: str, origin: Origin, changes: dict[str, str | bytes]
    ) -> tuple[bool, Fields]:
        """Apply ``changes``; returns (whether anything changed, the session's fields after)."""
        args: list[Any] = [agent, session, *_event_args(origin)]
        for field, value in changes.items():
            args += (field, value)
        reply = await self._run(
            "session_update",
            [
                self.keys.agent(agent),
                self.keys.session(agent, session),
                self.keys.sessions(agent, True),
                self.keys.sessions(agent, False),
                OUTBOX,
            ],
            args,
        )
        _raise_missing(reply[0])
        return reply[0] == "ok", _pairs(reply[1:])

    async def delete_session(self, agent: str, session: str, origin: Origin) -> Fields:
        reply = await self._run(
            "session_delete",
            [
                self.keys.agent(agent),
                self.keys.session(agent, session),
                *self.keys.session_indexes(agent),
                OUTBOX,
            ],
            [agent, session, *_event_args(origin)],
        )
        _raise_missing(reply[0])
        return _pairs(reply[1:])

    async def list_sessions(self, agent: str, enabled: bool | None, after: str, limit: int) -> Page:
        page = await self._page(
            [self.keys.sessions(agent, enabled), self.keys.agent(agent)],
            self.keys.session_prefix(agent),
            after,
            limit,
        )
        return page

    async def _page(self, keys: list[str], prefix: str, after: str, limit: int) -> Page:
        reply = await self._run("page", keys, [prefix, after, limit])
        if reply[0] == "not_found":
            raise AgentNotFound()
        items = [(member, _pairs(flat)) for member, flat in reply[3:] if flat]
        return Page(items=items, total=int(reply[1]), next_member=reply[2] or None)


def _event_args(origin: Origin) -> list[str]:
    return [new_event_id(), origin.actor, origin.request_id]


def _raise_missing(status: str) -> None:
    if status == "agent_not_found":
        raise AgentNotFound()
    if status == "session_not_found":
        raise SessionNotFound()
