"""``POST /v2/client_tokens``: a customer's backend mints a short-lived token for a browser page."""

from __future__ import annotations

from typing import Any

from agent_sessions.access import tokens
from agent_sessions.access.auth import (
    Role,
)
from agent_sessions.access.services import mint_token
from agent_sessions.errors import (
    AgentNotFound,
    Forbidden,
)
from agent_sessions.web.framework import (
    Call,
    Endpoint,
)


async def create_client_token(c: Call) -> tuple[int, Any]:
    signer: tokens.Signer | None = c.request.app.state.tokens
    assert c.key is not None and c.credential is not None
    if signer is None:
        raise Forbidden("client tokens are not enabled on this server: an operator sets CLIENT_TOKENS=true")
    return 201, await mint_token(c.services, signer, c.key, c.credential.digest, c.body)


ENDPOINTS: tuple[Endpoint, ...] = (
    Endpoint(
        "POST",
        "/v2/client_tokens",
        create_client_token,
        "Mint a short-lived client token for a browser page: one agent (and optionally one of its sessions),"
        " a role no higher than the minting key's",
        Role.VIEWER,
        body=tokens.ClientTokenCreate,
        response=tokens.ClientTokenCreated,
        status=201,
        raises=(AgentNotFound,),
    ),
)
