"""The store of sessions (and, through ``AgentStore``, of agents): every read and write of them.

Every write runs as one Lua script (``redis/lua/*.lua``; its KEYS and ARGV declared by name in
``sessions/lua.py``), so a write is all or nothing and timestamps come from Redis ``TIME``, never from
an API server's clock. Methods return raw hash fields (``dict[str, str]``); ``services`` turns them
into resources. A script's status becomes a domain error through one table (``redis.replies``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from agent_sessions.errors import PreconditionFailed, ServiceError
from agent_sessions.events.model import Origin, new_event_id
from agent_sessions.redis.keys import of_agent
from agent_sessions.redis.replies import raise_for
from agent_sessions.sessions.agent_store import AgentStore, Fields, Page, pairs
from agent_sessions.sessions.lua import SessionCreateArgs, SessionCreateKeys, SessionUpdateArgs, SessionUpdateKeys
from agent_sessions.sessions.representations import expires_at

__all__ = ["AdmissionInWrite", "Fields", "Found", "Idempotency", "Page", "Query", "Store", "Written"]


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


class AdmissionInWrite(Protocol):
    """A request the update script is to admit before it writes (the gate of ``lua/_gate.lua``, in the
    same round trip): the API key's digest, the limits (default rate, default burst), and ``settle``,
    which takes the gate's verdict and raises when the request was refused (the script then wrote
    nothing)."""

    @property
    def key_digest(self) -> str: ...

    @property
    def limits(self) -> tuple[float, int]: ...

    async def settle(self, verdict: list[Any]) -> None: ...


@dataclass(frozen=True)
class Written:
    """A write's outcome: the session's fields, whether it changed anything, whether it was a replay."""

    fields: Fields
    changed: bool
    replayed: bool = False


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


class Store(AgentStore):
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
        k = self.keys
        idem_record, idem_index = self._idem_keys(idem, agent)
        args: SessionCreateArgs = {
            "agent": agent,
            "session": session,
            "event_id": new_event_id(),
            "actor": origin.actor,
            "request_id": origin.request_id,
            "name": name,
            "description": description,
            "metadata": metadata,
            "enabled": "1" if enabled else "0",
            "idem_fingerprint": idem.fingerprint if idem else "",
            "idem_ttl": idem.ttl if idem else 1,
            "idem_max": idem.max_records if idem else 1,
            "idem_snapshots": k.idempotency_snapshots(agent, session),
            "history_max": self.history_max,
            "history_max_bytes": self.history_max_bytes,
            "dimension_prefix": k.dimension_prefix(agent),
            "indexed": indexed,
            "tti_minutes": tti_minutes,
        }
        keys: SessionCreateKeys = {
            **self.indexes.removal_keys(agent, session),  # a session's keys, as a delete names them
            "idem_record": idem_record,
            "idem_index": idem_index,
        }
        reply = await self._session_create(keys, args)
        written = _outcome(reply)
        return written.fields.pop("key"), written

    async def get_session(self, agent: str, session: str) -> Fields:
        """The session's fields; 404 once it has expired (compared with Redis time), swept or not."""
        reply = await self._session_get(
            {"agent": self.keys.agent(agent), "session": self.keys.session(agent, session)}, {}
        )
        raise_for(reply[0])
        now, fields = int(reply[1]), pairs(reply[2:])
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
        admission: AdmissionInWrite | None = None,
        indexed: str | None = None,
    ) -> Written:
        """Apply ``changes`` (all or nothing) unless ``if_match`` ("*" or versions) fails; with an
        ``admission``, only if the gate, run first by the same script, admits the request.
        ``indexed``: the indexed values of the metadata in ``changes`` (None when it has none)."""
        a = of_agent(self.keys, agent)
        history = a.history_prefix + session
        # Keys the script names but does not touch (no Idempotency-Key, no admission) are given the
        # agent's placeholder, so that every key of the call is in the agent's slot.
        idem_record = idem_index = key_record = key_bucket = a.no_idempotency
        if idem is not None:
            idem_record, idem_index = self._idem_keys(idem, agent)
        rate: float | str = ""  # "": the gate ran already
        burst: int | str = ""
        if admission is not None:
            key_record, key_bucket = self.keys.api_key(admission.key_digest), self.keys.key_bucket(admission.key_digest)
            rate, burst = admission.limits
        keys: SessionUpdateKeys = {
            "agent": a.agent,
            "session": a.session_prefix + session,
            "enabled_index": a.enabled,
            "disabled_index": a.disabled,
            "outbox": a.outbox,
            "history": history,
            "history_bytes": history + ":bytes",
            "idem_record": idem_record,
            "idem_index": idem_index,
            "updated_index": a.updated,
            "expiry_index": a.expiry,
            "key_record": key_record,
            "key_bucket": key_bucket,
        }
        args: SessionUpdateArgs = {
            "agent": agent,
            "session": session,
            "event_id": new_event_id(),
            "actor": origin.actor,
            "request_id": origin.request_id,
            "if_match": if_match,
            "idem_fingerprint": idem.fingerprint if idem else "",
            "idem_ttl": idem.ttl if idem else 1,
            "idem_max": idem.max_records if idem else 1,
            "idem_snapshots": f"{a.idempotency_snapshots_prefix}{session}:",
            "history_max": self.history_max,
            "history_max_bytes": self.history_max_bytes,
            "default_rate": rate,
            "default_burst": burst,
            "dimension_prefix": a.dimension_prefix,
            "indexed": "-" if indexed is None else indexed,
        }
        reply = await self._session_update(keys, args, more_args=[item for pair in changes.items() for item in pair])
        if admission:
            # {verdict} when the gate refused the request (nothing written), else {verdict, write's reply}
            await admission.settle(reply[0])
            reply = reply[1]
        written = _outcome(reply)
        # The script leaves out of its answer the fields sent (changed, or equal to the stored ones).
        sent = {field: value if isinstance(value, str) else value.decode() for field, value in changes.items()}
        return Written({**sent, **written.fields}, written.changed, written.replayed)

    async def delete_session(self, agent: str, session: str, origin: Origin) -> Fields:
        reply = await self._session_delete(
            self.indexes.removal_keys(agent, session),
            {
                "agent": agent,
                "session": session,
                "event_id": new_event_id(),
                "actor": origin.actor,
                "request_id": origin.request_id,
                "dimension_prefix": self.keys.dimension_prefix(agent),
            },
        )
        raise_for(reply[0])
        return pairs(reply[1:])

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
        after_score, after_member = query.after or ("", "")
        tag = self.keys.tag(agent)
        reply = await self._sessions_find(
            {
                "agent": self.keys.agent(agent),
                "base": base,
                "ready": self.keys.indexes(tag),
                "expiry": self.keys.expiry(tag),
            },
            {
                "session_prefix": self.keys.session_prefix(agent),
                "order": "key" if query.order == "key" else "desc" if query.descending else "asc",
                "after_score": after_score,
                "after_member": after_member,
                "limit": query.limit,
                "budget": query.budget,
                "program": query.program,
                "enabled": enabled,
                "group_sizes": ",".join(str(len(values)) for _, values in groups),
                "exact": "1" if query.exact and len(groups) == 1 and not enabled else "",
                "group_dimensions": ",".join(dimension for dimension, _ in groups),
                "agent": agent,
            },
            more_keys=[self.keys.dimension_index(agent, d, v) for d, values in groups for v in values],
        )
        raise_for(reply[0])
        total, next_score, next_member, matched = int(reply[1]), reply[2], reply[3], int(reply[4])
        return Found(
            items=[(member, pairs(flat)) for member, flat in reply[5:] if flat],
            total=None if total < 0 else total,
            after=(next_score, next_member) if next_member else None,
            matched=matched,
        )

    async def history(self, agent: str, session: str, below: int | None, limit: int) -> tuple[list[str], int]:
        """Up to ``limit`` history entries (JSON) newest first, with versions below ``below``; and the count."""
        reply = await self._history_page(
            {
                "agent": self.keys.agent(agent),
                "session": self.keys.session(agent, session),
                "history": self.keys.history(agent, session),
            },
            {"below": "" if below is None else below, "limit": limit},
        )
        raise_for(reply[0])
        return reply[2:], int(reply[1])

    def _idem_keys(self, idem: Idempotency | None, agent: str) -> tuple[str, str]:
        if idem is None:  # declared (the script names them), never read or written
            return self.keys.no_idempotency(agent), self.keys.no_idempotency(agent)
        return self.keys.idempotency(agent, idem.key_id, idem.key_digest), self.keys.idempotency_index(
            agent, idem.key_id
        )


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
    return Written(pairs(reply[1:]), status == "ok", replayed)
