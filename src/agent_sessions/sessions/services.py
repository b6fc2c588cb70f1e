"""The use cases: one function per operation, on top of the store.

Input here is already-validated body data (``models.parse_body``); this layer checks metadata limits,
generates keys, calls exactly one store operation and shapes the resource that goes back to the client.
"""

from __future__ import annotations

import asyncio
import dataclasses
import random
import re
import secrets
import weakref
from dataclasses import dataclass
from typing import Any

import orjson

from agent_sessions.errors import AgentNotFound, Conflict, InvalidRequest, PreconditionFailed
from agent_sessions.events.model import Origin
from agent_sessions.reports.model import Report, report_from_hash
from agent_sessions.sessions import filters
from agent_sessions.sessions.models import (
    AGENT_KEY_PATTERN,
    AGENT_KEY_RE,
    KEY_MAX_LENGTH,
    SESSION_KEY_PATTERN,
    SESSION_KEY_RE,
    Agent,
    AgentList,
    History,
    HistoryEntry,
    MetadataLimits,
    PageMetadata,
    Session,
    SessionCount,
    SessionList,
    encode_metadata,
    stored_minutes,
)
from agent_sessions.sessions.representations import agent_resource, event_time, session_resource, stored_value
from agent_sessions.sessions.store import AdmissionInWrite, Idempotency, Page, Query, Store

VERSION_RE = re.compile(r"[1-9][0-9]{0,17}")


def check_path_keys(agent: str, session: str | None = None) -> None:
    errors: dict[str, str] = {}
    if len(agent) > KEY_MAX_LENGTH or not AGENT_KEY_RE.fullmatch(agent):
        errors["agent_key"] = f"must match {AGENT_KEY_PATTERN} and be at most {KEY_MAX_LENGTH} characters"
    if session is not None and (len(session) > KEY_MAX_LENGTH or not SESSION_KEY_RE.fullmatch(session)):
        errors["session_key"] = f"must match {SESSION_KEY_PATTERN} and be at most {KEY_MAX_LENGTH} characters"
    if errors:
        raise InvalidRequest.for_fields(errors)


def decode_page_key(page_key: str | None, pattern: Any) -> str:
    """A page key is the last key (or version) of the previous page: the next page starts after it.
    Clients should treat it as opaque; any well-formed one is a valid place to start. Absent means the
    first page; present but empty is not a page key."""
    if page_key is None:
        return ""
    if len(page_key) > KEY_MAX_LENGTH or not pattern.fullmatch(page_key):
        raise InvalidRequest.for_fields({"page_key": "not a page key this API returns"})
    return page_key


MERGE_ATTEMPTS = 20
COUNT_STEPS = 10

# sort -> (the store's order, descending)
SORTS = {
    "key": ("key", False),
    "created_at": ("created", False),
    "-created_at": ("created", True),
    "updated_at": ("updated", False),
    "-updated_at": ("updated", True),
}
# A session list's page key is the session key where the previous page ended, preceded in created_at or
# updated_at order by its time there: "<ms>.<session key>".
SESSION_PAGE_KEY_PATTERN = "^(?:[0-9]{1,16}\\.)?" + SESSION_KEY_PATTERN.lstrip("^")
SCORED_PAGE_KEY_RE = re.compile(r"(?:([0-9]{1,16})\.)?(" + SESSION_KEY_PATTERN.strip("^$") + ")")
PAGE_KEY_MAX_LENGTH = 17 + KEY_MAX_LENGTH


@dataclass(frozen=True)
class Search:
    """A session list's query: ``metadata_filter`` (text, or None), ``sort`` (a key of SORTS),
    ``enabled``, ``page_key``."""

    metadata_filter: str | None = None
    sort: str = "key"
    enabled: bool | None = None
    page_key: str | None = None


def _decode_found_key(page_key: str | None, order: str) -> tuple[str, str] | None:
    """A page key -> (score, member) to start after. Either form is accepted in either order: in key
    order the member counts; in a time order a bare session key starts after that session's current
    place (or from the first, if it is no longer listed)."""
    if page_key is None:
        return None
    match = SCORED_PAGE_KEY_RE.fullmatch(page_key) if len(page_key) <= PAGE_KEY_MAX_LENGTH else None
    if match is None:
        raise InvalidRequest.for_fields({"page_key": "not a page key this API returns"})
    score, member = match.group(1) or "", match.group(2)
    if len(member) > KEY_MAX_LENGTH:
        raise InvalidRequest.for_fields({"page_key": "not a page key this API returns"})
    return ("", member) if order == "key" else (score, member)


def _found_key(after: tuple[str, str] | None, search: Search) -> str | None:
    """Where a page (or a count) ended -> the page key to continue from."""
    if after is None:
        return None
    score, member = after
    return member if SORTS[search.sort][0] == "key" else f"{score}.{member}"


class SessionLocks:
    """One ``asyncio.Lock`` per session being merge-patched in this process, gone once unused."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[tuple[str, str], asyncio.Lock] = weakref.WeakValueDictionary()

    def lock(self, agent: str, session: str) -> asyncio.Lock:
        lock = self._locks.get((agent, session))
        if lock is None:
            lock = self._locks[(agent, session)] = asyncio.Lock()
        return lock


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON Merge Patch: objects merge recursively, ``null`` deletes, anything else replaces."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def decode_version_key(page_key: str | None) -> int | None:
    if page_key is None:
        return None
    member = decode_page_key(page_key, VERSION_RE)
    return int(member)


def history_entry(raw: str) -> HistoryEntry:
    entry = orjson.loads(raw)
    old, new = entry["o"] or {}, entry["n"] or {}
    return {
        "version": int(entry["v"]),
        "at": event_time(str(entry["at"])),
        "actor": entry["actor"],
        "request_id": entry["request_id"],
        "changes": {f: {"old": stored_value(f, old.get(f)), "new": stored_value(f, v)} for f, v in new.items()},
    }


def _flags(changes: dict[str, Any], limits: MetadataLimits) -> dict[str, str | bytes]:
    """Body fields -> stored representation (metadata canonical JSON, enabled "1"/"0")."""
    stored: dict[str, str | bytes] = {}
    for field, value in changes.items():
        if field == "metadata":
            stored[field] = encode_metadata(value, limits)
        elif field == "enabled":
            stored[field] = "1" if value else "0"
        elif field in ("tti_minutes", "default_tti_minutes"):
            stored[field] = stored_minutes(value)
        else:
            stored[field] = value
    return stored


@dataclass(frozen=True)
class Services:
    store: Store
    limits: MetadataLimits
    dimensions: tuple[str, ...] = ()
    merges: SessionLocks = dataclasses.field(default_factory=SessionLocks)
    scan_max: int = 1000  # sessions one filtered list request examines (FILTER_SCAN_MAX)

    # -- agents -------------------------------------------------------------------------------------

    async def create_agent(self, body: dict[str, Any]) -> Agent:
        agent = body.get("key") or "agt_" + secrets.token_urlsafe(16)
        metadata = encode_metadata(body.get("metadata", {}), self.limits)
        fields = await self.store.create_agent(
            agent,
            body["name"],
            body.get("description", ""),
            metadata,
            body.get("enabled", True),
            stored_minutes(body.get("default_tti_minutes", 0)),
        )
        return agent_resource(agent, fields)

    async def get_agent(self, agent: str) -> Agent:
        return agent_resource(agent, await self.store.get_agent(agent))

    async def list_agents(self, page_key: str | None, limit: int) -> AgentList:
        page = await self.store.list_agents(decode_page_key(page_key, AGENT_KEY_RE), limit)
        agents = [agent_resource(key, fields) for key, fields in page.items]
        return {"agents": agents, "metadata": _page_metadata(page)}

    async def list_some_agents(self, keys: tuple[str, ...]) -> AgentList:
        """The agents of a scoped API key (a short list, so one page): existing ones, in key order."""
        agents = []
        for key in sorted(keys):
            try:
                agents.append(await self.get_agent(key))
            except AgentNotFound:
                continue
        return {"agents": agents, "metadata": {"page_key": None, "total_count": len(agents)}}

    async def update_agent(self, agent: str, body: dict[str, Any]) -> Agent:
        if not body:
            return await self.get_agent(agent)
        _, fields = await self.store.update_agent(agent, _flags(body, self.limits))
        return agent_resource(agent, fields)

    async def delete_agent(self, agent: str, origin: Origin) -> None:
        await self.store.delete_agent(agent, origin)

    async def get_report(self, agent: str) -> Report:
        return report_from_hash(agent, await self.store.report_fields(agent), self.dimensions)

    # -- sessions -----------------------------------------------------------------------------------

    async def create_session(
        self, agent: str, body: dict[str, Any], origin: Origin, idem: Idempotency | None = None
    ) -> tuple[Session, bool]:
        """Create; returns the session and whether this was a replay of an earlier request."""
        session = body.get("key") or "ase_" + secrets.token_urlsafe(16)
        metadata = encode_metadata(body.get("metadata", {}), self.limits)
        key, written = await self.store.create_session(
            agent,
            session,
            origin,
            body.get("name", ""),
            body.get("description", ""),
            metadata,
            body.get("enabled", True),
            idem,
            stored_minutes(body["tti_minutes"]) if "tti_minutes" in body else "",
            self.store.indexes.indexed(body.get("metadata", {})),
        )
        return session_resource(agent, key, written.fields), written.replayed

    async def get_session(self, agent: str, session: str) -> Session:
        return session_resource(agent, session, await self.store.get_session(agent, session))

    async def list_sessions(self, agent: str, search: Search, limit: int) -> SessionList:
        found = await self.store.find_sessions(agent, self._query(search, limit))
        sessions = [session_resource(agent, key, fields) for key, fields in found.items]
        return {
            "sessions": sessions,
            "metadata": {"page_key": _found_key(found.after, search), "total_count": found.total},
        }

    async def count_sessions(self, agent: str, search: Search) -> SessionCount:
        """The count of matching sessions, examining at most COUNT_STEPS x ``scan_max`` sessions: when
        there are more, the count so far and a page_key to continue from (the client adds them up)."""
        query, count = self._query(search, 0), 0
        for _ in range(COUNT_STEPS):
            found = await self.store.find_sessions(agent, query)
            if found.total is not None and query.after is None:
                return {"count": found.total, "page_key": None}
            count += found.matched
            if found.after is None:
                return {"count": count, "page_key": None}
            query = dataclasses.replace(query, after=found.after)
        return {"count": count, "page_key": _found_key(query.after, search)}

    def _query(self, search: Search, limit: int) -> Query:
        order, descending = SORTS[search.sort]
        after = _decode_found_key(search.page_key, order)
        program, groups, exact = "", [], False
        if search.metadata_filter is not None:
            parsed = filters.parse(search.metadata_filter)
            program = orjson.dumps(parsed).decode()
            conditions = filters.conjuncts(parsed)
            # The dimensions the write scripts index, so a plan never names an index nobody keeps.
            indexes = self.store.indexes
            for condition in conditions:
                indexed = filters.index_values(condition, indexes.dimensions, indexes.max_bytes)
                if indexed is not None:
                    groups.append((indexed[0], tuple(indexed[1])))
            exact = len(groups) == 1 and conditions == [parsed]
        return Query(
            order=order,
            descending=descending,
            after=after,
            limit=limit,
            budget=self.scan_max,
            program=program,
            enabled=search.enabled,
            groups=tuple(groups),
            exact=exact,
        )

    async def update_session(
        self,
        agent: str,
        session: str,
        body: dict[str, Any],
        origin: Origin,
        *,
        merge: bool = False,
        if_match: str = "",
        idem: Idempotency | None = None,
        admission: AdmissionInWrite | None = None,
    ) -> tuple[Session, bool]:
        """The PATCH; returns the session after it and whether this was a replay. ``admission``: the
        request is yet to be admitted (authenticated, rate limited) by the update script itself.

        ``{}`` and value-equal bodies change nothing. With ``merge`` (JSON Merge Patch), metadata is
        merged into the stored metadata: read, merged here, and written only if the version is still
        the one read (compare-and-set in the update script), retried when another write came between.
        """
        if not (merge and "metadata" in body):
            changes = _flags(body, self.limits)
            indexed = self.store.indexes.indexed(body["metadata"]) if "metadata" in body else None
            written = await self.store.update_session(
                agent, session, origin, changes, if_match, idem, admission, indexed
            )
            return session_resource(agent, session, written.fields), written.replayed
        assert admission is None, "a merge patch reads before it writes: admit the request first"
        # Merge patches of one session from this process take turns, so they never race each other;
        # only writes from other processes can come between a read and its write.
        async with self.merges.lock(agent, session):
            return await self._merge(agent, session, body, origin, if_match, idem)

    async def _merge(
        self, agent: str, session: str, body: dict[str, Any], origin: Origin, if_match: str, idem: Idempotency | None
    ) -> tuple[Session, bool]:
        client_version = if_match not in ("", "*")
        for attempt in range(MERGE_ATTEMPTS):
            current = await self.store.get_session(agent, session)
            merged = merge_patch(orjson.loads(current["metadata"]), body["metadata"])
            changes = _flags({**body, "metadata": merged}, self.limits)
            guard = if_match if client_version else current["version"]
            try:
                indexed = self.store.indexes.indexed(merged)
                written = await self.store.update_session(agent, session, origin, changes, guard, idem, None, indexed)
            except PreconditionFailed:
                if client_version:
                    raise
                # Another process wrote between our read and our write: merge again, after a pause
                # that grows and is random, so that contenders spread out instead of colliding again.
                await asyncio.sleep(random.uniform(0, 0.002 * 2 ** min(attempt, 6)))
                continue
            return session_resource(agent, session, written.fields), written.replayed
        raise Conflict(f"the session changed {MERGE_ATTEMPTS} times while this merge patch was applied; retry")

    async def history(self, agent: str, session: str, page_key: str | None, limit: int) -> History:
        below = decode_version_key(page_key)
        entries, total = await self.store.history(agent, session, below, limit + 1)
        items = [history_entry(entry) for entry in entries[:limit]]
        next_key = str(items[-1]["version"]) if len(entries) > limit else None
        return {"history": items, "metadata": {"page_key": next_key, "total_count": total}}

    async def delete_session(self, agent: str, session: str, origin: Origin) -> None:
        await self.store.delete_session(agent, session, origin)


def _page_metadata(page: Page) -> PageMetadata:
    return {"page_key": page.next_member, "total_count": page.total}
