"""The store of agents and sessions: every read and write of them, each write one Lua script.

Every write runs as one Lua script (see ``lua/*.lua`` for each script's KEYS, ARGV and layout), so a
write is all or nothing and timestamps come from Redis ``TIME``, never from an API server's clock.
Methods return raw hash fields (``dict[str, str]``); ``services`` turns them into resources. A script's
status becomes a domain error through one table (``replies``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol, cast

import redis.asyncio as aioredis

from agent_sessions.errors import PreconditionFailed, ServiceError
from agent_sessions.events import Origin, new_event_id
from agent_sessions.redis.client import Batches
from agent_sessions.redis.indexes import SessionIndexes
from agent_sessions.redis.keys import KEYS, Keys, of_agent
from agent_sessions.redis.outages import outage_as_unavailable
from agent_sessions.redis.replies import raise_for
from agent_sessions.redis.scripts import Script
from agent_sessions.representations import expires_at

Fields = dict[str, str]


@dataclass(frozen=True)
class Idempotency:
    """An Idempotency-Key in force for one request: whose it is (the API key id and the digest of the
    Idempotency-Key), the request's fingerprint, how long its record is kept and how many records one
    API key may hold (see lua/_idempotency.lua)."""

    key_id: str
    key_digest: str
    fingerprint: str
    ttl: int
    max_records: int


class Admission(Protocol):
    """A request the update script is to admit before it writes (the gate of ``lua/_gate.lua``, in the
    same round trip): the API key's digest, the limits (default rate, default burst), and ``settle``,
    which takes the gate's verdict and raises when the request was refused (the script then wrote
    nothing)."""

    @property
    def key_digest(self) -> str: ...

    @property
    def limits(self) -> tuple[float, int]: ...

    async def settle(self, verdict: list[Any]) -> None: ...


NOT_ADMITTING = ("", "")  # session_update.lua's admission arguments when the gate ran already


def gate_keys(keys: Keys, key_digest: str) -> list[str]:
    """The gate's KEYS: the key record and the key's bucket (one tag)."""
    return [keys.api_key(key_digest), keys.key_bucket(key_digest)]


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


@dataclass(frozen=True)
class Query:
    """What ``find_sessions`` looks for (see lua/sessions_find.lua): ``order`` "key", "created" or
    "updated" (with ``descending``); ``after`` the (score, member) to start after; ``program`` the
    filter's JSON ("" none); ``groups`` the dimension index conditions the filter requires, each a
    dimension and its values; ``exact`` when the filter is just the one condition."""

    order: str = "key"
    descending: bool = False
    after: tuple[str, str] | None = None
    limit: int = 20
    budget: int = 1000
    program: str = ""
    enabled: bool | None = None
    groups: tuple[tuple[str, tuple[str, ...]], ...] = ()
    exact: bool = False


@dataclass(frozen=True)
class Found:
    items: list[tuple[str, Fields]]
    total: int | None  # None: not counted within the budget
    after: tuple[str, str] | None  # where the next page starts
    matched: int  # matches among the sessions examined


def _pairs(flat: list[str]) -> Fields:
    return dict(zip(flat[::2], flat[1::2], strict=True))


class Store:
    def __init__(
        self,
        client: aioredis.Redis,
        keys: Keys = KEYS,
        history_max: int = 1000,
        batches: Batches | None = None,
        history_max_bytes: int = 1024 * 1024,
        dimensions: tuple[str, ...] = (),
    ) -> None:
        self.redis = client
        self.keys = keys
        self.indexes = SessionIndexes(dimensions, keys=keys)
        self.history_max = history_max
        self.history_max_bytes = history_max_bytes
        self._batches = batches or Batches(client)
        self._scripts: dict[str, Script] = {}

    async def _run(self, name: str, keys: list[str], args: list[Any]) -> list[Any]:
        script = self._scripts.get(name)
        if script is None:
            script = self._scripts[name] = Script(self._batches, name)
        return cast(list[Any], await script(keys, args))

    async def ping(self) -> bool:
        async with outage_as_unavailable():
            return bool(await self.redis.ping())

    # -- agents -------------------------------------------------------------------------------------

    async def create_agent(
        self, agent: str, name: str, description: str, metadata: bytes, enabled: bool, default_tti: str = "0"
    ) -> Fields:
        reply = await self._run(
            "agent_create",
            [
                self.keys.agent(agent),
                self.keys.agents(tag := self.keys.tag(agent)),
                self.keys.purge(agent),
                self.keys.indexes(tag),
                self.keys.purges(tag),
            ],
            [agent, name, description, metadata, "1" if enabled else "0", default_tti, *self.indexes.ready_fields()],
        )
        raise_for(reply[0])
        return _pairs(reply[1:])

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
        args = [item for pair in changes.items() for item in pair]
        reply = await self._run("agent_update", [self.keys.agent(agent)], args)
        raise_for(reply[0])
        return reply[0] == "ok", _pairs(reply[1:])

    async def delete_agent(self, agent: str, origin: Origin) -> int:
        """Delete the agent now; returns how many of its sessions are left for the purge (``Purger``)."""
        reply = await self._run(
            "agent_delete",
            [
                self.keys.agent(agent),
                self.keys.agents(tag := self.keys.tag(agent)),
                *self.keys.session_indexes(agent),
                self.keys.purge(agent),
                self.keys.purges(tag),
                *self.indexes.script_keys(agent)[:2],
                self.keys.escalation_rules(agent),
            ],
            [agent, origin.actor, origin.request_id],
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
        idem: Idempotency | None = None,
        tti_minutes: str = "",
        indexed: str = "",
    ) -> tuple[str, Written]:
        """Create; returns the session key (the first request's, on a replay) and the outcome.
        ``tti_minutes``: the session's time-to-idle as stored ("" for the agent's default);
        ``indexed``: its metadata's indexed values (``SessionIndexes.indexed``)."""
        reply = await self._run(
            "session_create",
            [
                self.keys.agent(agent),
                self.keys.session(agent, session),
                *self.keys.session_indexes(agent),
                self.keys.outbox(self.keys.tag(agent)),
                self.keys.history(agent, session),
                self.keys.history_bytes(agent, session),
                *self._idem_keys(idem, agent),
                *self.indexes.script_keys(agent),
            ],
            [
                agent,
                session,
                *_event_args(origin),
                name,
                description,
                metadata,
                "1" if enabled else "0",
                *self._idem_args(idem, agent, session),
                self.history_max,
                self.history_max_bytes,
                *self.indexes.script_args(agent),
                indexed,
                tti_minutes,
            ],
        )
        written = _outcome(reply)
        return written.fields.pop("key"), written

    async def get_session(self, agent: str, session: str) -> Fields:
        """The session's fields; 404 once it has expired (compared with Redis time), swept or not."""
        reply = await self._run("session_get", [self.keys.agent(agent), self.keys.session(agent, session)], [])
        raise_for(reply[0])
        now, fields = int(reply[1]), _pairs(reply[2:])
        expiry = expires_at(fields["updated_at"], fields.get("tti_minutes")) if fields else None
        if not fields or (expiry is not None and now >= expiry):
            raise_for("session_not_found")
        return fields

    async def update_session(
        self,
        agent: str,
        session: str,
        origin: Origin,
        changes: dict[str, str | bytes],
        if_match: str = "",
        idem: Idempotency | None = None,
        admission: Admission | None = None,
        indexed: str | None = None,
    ) -> Written:
        """Apply ``changes`` (all or nothing) unless ``if_match`` ("*" or versions) fails; with an
        ``admission``, only if the gate, run first by the same script, admits the request.
        ``indexed``: the indexed values of the metadata in ``changes`` (None when it has none)."""
        a = of_agent(self.keys, agent)
        history = a.history_prefix + session
        if idem is None:
            idem_keys, idem_args = [a.no_idempotency] * 2, ["", 1, 1, f"{a.idempotency_snapshots_prefix}{session}:"]
        else:
            idem_keys, idem_args = self._idem_keys(idem, agent), self._idem_args(idem, agent, session)
        keys = [
            a.agent,
            a.session_prefix + session,
            a.enabled,
            a.disabled,
            a.outbox,
            history,
            history + ":bytes",
            *idem_keys,
            a.updated,
            a.expiry,
        ]
        args: list[Any] = [
            agent,
            session,
            *_event_args(origin),
            if_match,
            *idem_args,
            self.history_max,
            self.history_max_bytes,
            *(admission.limits if admission else NOT_ADMITTING),
            a.dimension_prefix,
            "-" if indexed is None else indexed,
        ]
        if admission:
            keys += gate_keys(self.keys, admission.key_digest)
        for field, value in changes.items():
            args += (field, value)
        reply = await self._run("session_update", keys, args)
        if admission:
            # {verdict} when the gate refused the request (nothing written), else {verdict, write's reply}
            await admission.settle(reply[0])
            reply = reply[1]
        written = _outcome(reply)
        # The script leaves out of its answer the fields sent (changed, or equal to the stored ones).
        sent = {field: value if isinstance(value, str) else value.decode() for field, value in changes.items()}
        return Written({**sent, **written.fields}, written.changed, written.replayed)

    async def delete_session(self, agent: str, session: str, origin: Origin) -> Fields:
        reply = await self._run(
            "session_delete",
            self.indexes.removal_keys(agent, session),
            [agent, session, *_event_args(origin), *self.indexes.script_args(agent)],
        )
        raise_for(reply[0])
        return _pairs(reply[1:])

    async def find_sessions(self, agent: str, query: Query) -> Found:
        """A page (``limit`` > 0) or a count (0) of sessions, examining at most ``query.budget``."""
        enabled = "" if query.enabled is None else "1" if query.enabled else "0"
        if query.order == "key" and not query.groups:
            base, enabled = self.keys.sessions(agent, query.enabled), ""  # the enabled index filters
        elif query.order == "key":
            base = self.keys.sessions(agent)
        else:
            base = self.keys.sessions_by(agent, query.order)
        groups = [] if query.order != "key" else query.groups
        index_keys = [self.keys.dimension_index(agent, d, v) for d, values in groups for v in values]
        after_score, after_member = query.after or ("", "")
        reply = await self._run(
            "sessions_find",
            [
                self.keys.agent(agent),
                base,
                self.keys.indexes(tag := self.keys.tag(agent)),
                self.keys.expiry(tag),
                *index_keys,
            ],
            [
                self.keys.session_prefix(agent),
                "key" if query.order == "key" else "desc" if query.descending else "asc",
                after_score,
                after_member,
                query.limit,
                query.budget,
                query.program,
                enabled,
                ",".join(str(len(values)) for _, values in groups),
                "1" if query.exact and len(groups) == 1 and not enabled else "",
                ",".join(dimension for dimension, _ in groups),
                agent,
            ],
        )
        raise_for(reply[0])
        total, next_score, next_member, matched = int(reply[1]), reply[2], reply[3], int(reply[4])
        return Found(
            items=[(member, _pairs(flat)) for member, flat in reply[5:] if flat],
            total=None if total < 0 else total,
            after=(next_score, next_member) if next_member else None,
            matched=matched,
        )

    async def history(self, agent: str, session: str, below: int | None, limit: int) -> tuple[list[str], int]:
        """Up to ``limit`` history entries (JSON) newest first, with versions below ``below``; and the count."""
        reply = await self._run(
            "history_page",
            [self.keys.agent(agent), self.keys.session(agent, session), self.keys.history(agent, session)],
            ["" if below is None else below, limit],
        )
        raise_for(reply[0])
        return reply[2:], int(reply[1])

    def _idem_keys(self, idem: Idempotency | None, agent: str) -> list[str]:
        if idem is None:  # declared (the script names them), never read or written
            return [self.keys.no_idempotency(agent)] * 2
        return [
            self.keys.idempotency(agent, idem.key_id, idem.key_digest),
            self.keys.idempotency_index(agent, idem.key_id),
        ]

    def _idem_args(self, idem: Idempotency | None, agent: str, session: str) -> list[Any]:
        snapshots = self.keys.idempotency_snapshots(agent, session)
        if idem is None:
            return ["", 1, 1, snapshots]
        return [idem.fingerprint, idem.ttl, idem.max_records, snapshots]

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


def _event_args(origin: Origin) -> list[str]:
    return [new_event_id(), origin.actor, origin.request_id]


def _outcome(reply: list[Any]) -> Written:
    """A create/update script's reply -> its outcome, or the domain error it stands for."""
    replayed = reply[0] == "replay"
    if replayed:
        reply = reply[1:]
    status = reply[0]
    try:
        raise_for(status)
    except ServiceError as exc:
        exc.replayed = replayed  # a stored error answer is replayed as such (Idempotent-Replayed)
        if isinstance(exc, PreconditionFailed) and len(reply) == 2:
            exc.current_version = int(reply[1])
        raise
    return Written(_pairs(reply[1:]), status == "ok", replayed)
