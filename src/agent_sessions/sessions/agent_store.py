"""The store's agents: their reads and writes (each write one Lua script), and what the session store
(``store.Store``, which extends this class) shares with them: the client, the key names, the scripts.

Methods return raw hash fields (``dict[str, str]``); ``services`` turns them into resources. A script's
status becomes a domain error through one table (``redis.replies``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast

import redis.asyncio as aioredis

from agent_sessions.events.model import Origin
from agent_sessions.redis.client import Batches
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.outages import outage_as_unavailable
from agent_sessions.redis.replies import raise_for
from agent_sessions.redis.scripts import Script
from agent_sessions.sessions import lua
from agent_sessions.sessions.indexes import SessionIndexes

Fields = dict[str, str]


@dataclass(frozen=True)
class Page:
    items: list[tuple[str, Fields]]
    total: int
    next_member: str | None


def pairs(flat: list[str]) -> Fields:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class AgentStore:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys,
        history_max: int = 1000,
        batches: Batches | None = None,
        history_max_bytes: int = 1024 * 1024,
        dimensions: tuple[str, ...] = (),
    ) -> None:
        self.redis = client
        self.keys = keys
        self.indexes = SessionIndexes(keys, dimensions)
        self.history_max = history_max
        self.history_max_bytes = history_max_bytes
        batches = batches or Batches(client)
        self._agent_create = Script(batches, lua.AGENT_CREATE)
        self._agent_update = Script(batches, lua.AGENT_UPDATE)
        self._agent_delete = Script(batches, lua.AGENT_DELETE)
        self._session_create = Script(batches, lua.SESSION_CREATE)
        self._session_update = Script(batches, lua.SESSION_UPDATE)
        self._session_delete = Script(batches, lua.SESSION_DELETE)
        self._session_get = Script(batches, lua.SESSION_GET)
        self._sessions_find = Script(batches, lua.SESSIONS_FIND)
        self._history_page = Script(batches, lua.HISTORY_PAGE)

    async def ping(self) -> bool:
        async with outage_as_unavailable():
            return bool(await self.redis.ping())

    async def create_agent(
        self, agent: str, name: str, description: str, metadata: bytes, enabled: bool, default_tti: str = "0"
    ) -> Fields:
        k, tag = self.keys, self.keys.tag(agent)
        reply = await self._agent_create(
            {
                "agent": k.agent(agent),
                "agents": k.agents(tag),
                "purge": k.purge(agent),
                "ready": k.indexes(tag),
                "purges": k.purges(tag),
            },
            {
                "agent": agent,
                "name": name,
                "description": description,
                "metadata": metadata,
                "enabled": "1" if enabled else "0",
                "default_tti": default_tti,
            },
            more_args=self.indexes.ready_fields(),
        )
        raise_for(reply[0])
        return pairs(reply[1:])

    async def get_agent(self, agent: str) -> Fields:
        async with outage_as_unavailable():
            fields = cast(Fields, await self.redis.hgetall(self.keys.agent(agent)))
        if not fields:
            raise_for("agent_not_found")
        return fields

    async def report_fields(self, agent: str) -> Fields:
        return await self._under_agent(agent, self.keys.report(agent))

    async def claim_seed(self) -> bool:
        """True the first time it is called on a store (``agent-sessions dev`` seeds it then)."""
        async with outage_as_unavailable():
            return bool(await self.redis.set(self.keys.dev_seeded, "1", nx=True))

    async def update_agent(self, agent: str, changes: dict[str, str | bytes]) -> tuple[bool, Fields]:
        changed = [item for pair in changes.items() for item in pair]
        reply = await self._agent_update({"agent": self.keys.agent(agent)}, {}, more_args=changed)
        raise_for(reply[0])
        return reply[0] == "ok", pairs(reply[1:])

    async def delete_agent(self, agent: str, origin: Origin) -> int:
        """Delete the agent now; returns how many of its sessions are left for the purge (``Purger``)."""
        k, tag = self.keys, self.keys.tag(agent)
        created, updated, _ = self.indexes.sort_keys(agent)
        reply = await self._agent_delete(
            {
                "agent": k.agent(agent),
                "agents": k.agents(tag),
                "all_sessions": k.sessions(agent),
                "enabled_index": k.sessions(agent, True),
                "disabled_index": k.sessions(agent, False),
                "purge": k.purge(agent),
                "purges": k.purges(tag),
                "created_index": created,
                "updated_index": updated,
                "rules": k.escalation_rules(agent),
            },
            {"agent": agent, "actor": origin.actor, "request_id": origin.request_id},
        )
        raise_for(reply[0])
        return int(reply[1])

    async def list_agents(self, after: str, limit: int) -> Page:
        """A page of agents by key, merged from every partition's list, then each agent on it read (the
        agents' hashes have their partitions' tags, so no one script can read them all). Not one
        snapshot: an agent deleted between the two reads is left out of the page, one created meanwhile
        is listed or not, and the total is the sum of the partitions' counts at the first read."""
        start = f"({after}" if after else "-"
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            for tag in self.keys.tags():
                pipe.zcard(self.keys.agents(tag))
                pipe.zrangebylex(self.keys.agents(tag), start, "+", 0, limit + 1)  # one more: a next page?
            replies = await pipe.execute()
            total = sum(cast(list[int], replies[::2]))
            members = sorted(member for page in cast(list[list[str]], replies[1::2]) for member in page)[: limit + 1]
            next_member = members[limit - 1] if len(members) > limit else None
            members = members[:limit]
            pipe = self.redis.pipeline(transaction=False)
            for member in members:
                pipe.hgetall(self.keys.agent(member))
            hashes = cast(list[Fields], await pipe.execute()) if members else []
        items = [(member, fields) for member, fields in zip(members, hashes, strict=True) if fields]
        return Page(items=items, total=total, next_member=next_member)

    async def _under_agent(self, agent: str, key: str) -> Fields:
        """A hash that belongs to an agent, read in one round trip with the agent's existence."""
        async with outage_as_unavailable():
            pipe = self.redis.pipeline(transaction=False)
            pipe.exists(self.keys.agent(agent))
            pipe.hgetall(key)
            agent_exists, fields = await pipe.execute()
        if not agent_exists:
            raise_for("agent_not_found")
        return cast(Fields, fields)
