"""Client tokens: short-lived credentials that a customer's backend mints for a browser page, so that no
API key ever reaches a browser (as Stripe's ephemeral keys, Pusher's and Ably's tokens).

- Minted by ``POST /v2/client_tokens`` with an API key that may act on the agent: scoped to one agent,
  and optionally to one of its sessions; a role no higher than the minting key's (``viewer`` by
  default, or ``editor``); a lifetime of ``TTL_MIN``-``TTL_MAX`` seconds (default ``TTL_DEFAULT``).
- Sent as ``Authorization: Bearer act_…``, and on ``GET /v2/events`` and ``/v2/events/stream`` also as
  ``?access_token=act_…`` (RFC 6750 §2.3: EventSource sends no headers). API keys are never taken in a
  URL.
- A token is ``act_`` and a JWT (HS256, ``CLIENT_TOKEN_SECRET``, PyJWT) that names its minting key: its
  id and the digest under which Redis keeps the key's record. Verifying it needs no Redis; the request
  then goes through the same gate as the minting key's own requests (one round trip, in the PATCH's
  write): revoking the key refuses its tokens at once, and the key's rate limit is charged. A token
  holds nothing in Redis, and minting is a request like any other, charged to the key's bucket: a key
  mints at most its rate limit's worth of tokens a second.
- Its expiry is checked against the API process's clock (``token_expired``, 401, once past it).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Literal, NotRequired

import jwt
from pydantic import Field
from typing_extensions import TypedDict

from agent_sessions.access.auth import ApiKey, Role
from agent_sessions.errors import TokenExpired, Unauthorized
from agent_sessions.sessions.models import STRICT, AgentKey, SessionKey, Timestamp

PREFIX = "act_"
ALGORITHM = "HS256"
TTL_MIN, TTL_MAX, TTL_DEFAULT = 60, 3600, 900


class ClientTokenCreate(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    agent_key: AgentKey
    session_key: NotRequired[SessionKey]  # absent: every session of the agent
    role: NotRequired[Literal["viewer", "editor"]]  # default viewer (never an admin); never above the minter's
    ttl_seconds: NotRequired[Annotated[int, Field(ge=TTL_MIN, le=TTL_MAX)]]  # default TTL_DEFAULT


class ClientTokenCreated(TypedDict):
    token: str  # act_…: send it as Authorization: Bearer, or ?access_token= on the event log
    agent_key: str
    session_key: str | None
    role: Literal["viewer", "editor"]
    expires_at: Timestamp


@dataclass(frozen=True)
class ClientToken:
    key_id: str  # the minting key
    key_digest: str  # where its record (revocation) and its bucket (rate limit) are
    agent: str
    session: str | None  # None: every session of the agent
    role: Role
    expires_at: int  # seconds since the epoch

    def limit(self, key: ApiKey) -> ApiKey:
        """What the minting key may do through this token: the token's role, agent and session."""
        return ApiKey(
            id=key.id,
            name=key.name,
            role=self.role,
            agents=(self.agent,),
            rate=key.rate,
            burst=key.burst,
            created_at=key.created_at,
            revoked_at=key.revoked_at,
            session=self.session,
            token=True,
        )


@dataclass(frozen=True)
class Credential:
    """What a request authenticates with: the digest of an API key's record (its own, or a client
    token's minting key's), and the token when it was one."""

    digest: str
    token: ClientToken | None = None

    def limit(self, key: ApiKey) -> ApiKey:
        """The key's record as this credential may use it."""
        return key if self.token is None else self.token.limit(key)


class Signer:
    """Mints and verifies client tokens with ``CLIENT_TOKEN_SECRET``."""

    def __init__(self, secret: str) -> None:
        self._secret = secret

    def mint(
        self, key: ApiKey, key_digest: str, agent: str, session: str | None, role: Role, ttl: int
    ) -> tuple[str, int]:
        """A new token and when it expires (seconds since the epoch)."""
        now = int(time.time())
        claims: dict[str, object] = {"kid": key.id, "kd": key_digest, "agt": agent, "rol": role.value}
        if session is not None:
            claims["ses"] = session
        claims.update(iat=now, exp=now + ttl)
        return PREFIX + jwt.encode(claims, self._secret, algorithm=ALGORITHM), now + ttl

    def verify(self, token: str) -> ClientToken:
        """The token's claims; ``TokenExpired`` once past its expiry, ``Unauthorized`` when it is not one
        this service signed (forged, altered, another secret's, malformed)."""
        try:
            claims = jwt.decode(
                token.removeprefix(PREFIX), self._secret, algorithms=[ALGORITHM], options={"require": ["exp"]}
            )
            return ClientToken(
                key_id=str(claims["kid"]),
                key_digest=str(claims["kd"]),
                agent=str(claims["agt"]),
                session=str(claims["ses"]) if "ses" in claims else None,
                role=Role(claims["rol"]),
                expires_at=int(claims["exp"]),
            )
        except jwt.ExpiredSignatureError:
            raise TokenExpired() from None
        except (jwt.InvalidTokenError, KeyError, ValueError):
            raise Unauthorized("not a client token this service issued") from None
