"""The use cases: one function per operation, on top of the store.

Input here is already-validated body data (``models.parse_body``); this layer checks metadata limits,
generates keys, calls exactly one store operation and shapes the resource that goes back to the client.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from dataclasses import dataclass
from typing import Any

from agent_sessions.errors import AgentNotFound, InvalidRequest
from agent_sessions.events import Origin
from agent_sessions.models import (
    AGENT_KEY_RE,
    KEY_MAX_LENGTH,
    SESSION_KEY_RE,
    Agent,
    AgentList,
    MetadataLimits,
    PageMetadata,
    Session,
    SessionList,
    encode_metadata,
)
from agent_sessions.reports import Report, report_from_hash
from agent_sessions.resources import agent_resource, session_resource
from agent_sessions.store import Page, Store


def check_path_keys(agent: str, session: str | None = None) -> None:
    errors: dict[str, str] = {}
    if len(agent) > KEY_MAX_LENGTH or not AGENT_KEY_RE.fullmatch(agent):
        errors["agent_key"] = "must match agt_[0-9a-zA-Z_-]+ and be at most 64 characters"
    if session is not None and (len(session) > KEY_MAX_LENGTH or not SESSION_KEY_RE.fullmatch(session)):
        errors["session_key"] = "must match ase_[0-9a-zA-Z_-]+ and be at most 64 characters"
    if errors:
        raise InvalidRequest.for_fields(errors)


def encode_page_key(member: str | None) -> str | None:
    return None if member is None else base64.urlsafe_b64encode(member.encode()).decode().rstrip("=")


def decode_page_key(page_key: str | None, pattern: Any) -> str:
    """Page keys are opaque to clients; inside they are the last key of the previous page."""
    if not page_key:
        return ""
    try:
        member = base64.urlsafe_b64decode(page_key + "=" * (-len(page_key) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        member = ""
    if not pattern.fullmatch(member) or len(member) > KEY_MAX_LENGTH:
        raise InvalidRequest.for_fields({"page_key": "not a page key this API returned"})
    return member


def _flags(changes: dict[str, Any], limits: MetadataLimits) -> dict[str, str | bytes]:
    """Body fields -> stored representation (metadata canonical JSON, enabled "1"/"0")."""
    stored: dict[str, str | bytes] = {}
    for field, value in changes.items():
        if field == "metadata":
            stored[field] = encode_metadata(value, limits)
        elif field == "enabled":
            stored[field] = "1" if value else "0"
        else:
            stored[field] = value
    return stored


@dataclass(frozen=True)
class Services:
    store: Store
    limits: MetadataLimits
    dimensions: tuple[str, ...] = ()

    # -- agents -------------------------------------------------------------------------------------

    async def create_agent(self, body: dict[str, Any]) -> Agent:
        agent = body.get("key") or "agt_" + secrets.token_urlsafe(16)
        metadata = encode_metadata(body.get("metadata", {}), self.limits)
        fields = await self.store.create_agent(
            agent, body["name"], body.get("description", ""), metadata, body.get("enabled", True)
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

    async def create_session(self, agent: str, body: dict[str, Any], origin: Origin) -> Session:
        session = body.get("key") or "ase_" + secrets.token_urlsafe(16)
        metadata = encode_metadata(body.get("metadata", {}), self.limits)
        fields = await self.store.create_session(
            agent,
            session,
            origin,
            body.get("name", ""),
            body.get("description", ""),
            metadata,
            body.get("enabled", True),
        )
        return session_resource(agent, session, fields)

    async def get_session(self, agent: str, session: str) -> Session:
        return session_resource(agent, session, await self.store.get_session(agent, session))

    async def list_sessions(self, agent: str, enabled: bool | None, page_key: str | None, limit: int) -> SessionList:
        page = await self.store.list_sessions(agent, enabled, decode_page_key(page_key, SESSION_KEY_RE), limit)
        sessions = [session_resource(agent, key, fields) for key, fields in page.items]
        return {"sessions": sessions, "metadata": _page_metadata(page)}

    async def update_session(self, agent: str, session: str, body: dict[str, Any], origin: Origin) -> Session:
        """The PATCH. ``{}`` reads the session (existence checks still apply) and changes nothing."""
        if not body:
            return await self.get_session(agent, session)
        _, fields = await self.store.update_session(agent, session, origin, _flags(body, self.limits))
        return session_resource(agent, session, fields)

    async def delete_session(self, agent: str, session: str, origin: Origin) -> None:
        await self.store.delete_session(agent, session, origin)


def _page_metadata(page: Page) -> PageMetadata:
    return {"page_key": encode_page_key(page.next_member), "total_count": page.total}
