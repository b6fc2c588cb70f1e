"""The use case of client tokens: minting one for a browser page (``POST /v2/client_tokens``)."""

from __future__ import annotations

from typing import Any

from agent_sessions.access import tokens
from agent_sessions.access.auth import ApiKey, Role, article, authorize
from agent_sessions.access.tokens import ClientTokenCreated
from agent_sessions.errors import Forbidden
from agent_sessions.sessions.representations import event_time
from agent_sessions.sessions.services import Services


async def mint_token(
    services: Services, signer: tokens.Signer, key: ApiKey, key_digest: str, body: dict[str, Any]
) -> ClientTokenCreated:
    """A client token for ``body``'s agent (and session), for a key that may act on the agent with at
    least the role asked for (a token never exceeds its minter). 404 for an unknown agent."""
    agent, session = body["agent_key"], body.get("session_key")
    role = Role(body.get("role", Role.VIEWER))
    if role.rank > key.role.rank:
        raise Forbidden(f"{article(key.role)} {key.role} key cannot mint {article(role)} {role} token")
    authorize(key, role, agent)
    await services.get_agent(agent)
    token, expires = signer.mint(key, key_digest, agent, session, role, body.get("ttl_seconds", tokens.TTL_DEFAULT))
    return {
        "token": token,
        "agent_key": agent,
        "session_key": session,
        "role": role.value,  # type: ignore[typeddict-item]
        "expires_at": event_time(str(expires * 1000)),
    }
