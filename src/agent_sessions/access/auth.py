"""API keys and roles.

A key is ``ask_`` + 32 url-safe random characters (24 random bytes). Only its SHA-256 digest is stored
(``access.store.Keyring``: a record per digest with id, name, role, agents, rate, burst, created_at,
revoked_at, and an index from key ids to digests for listing and revoking by id). Whether a key is valid
(revocation) is checked in Redis on every request, so a revoked key is refused by every API process on
its next request; an API process keeps only the unchanging part of the records of keys it admitted
(role and agents, ``ratelimit.Gate``), to authorize a PATCH before its one round trip.
Keys are looked up by digest (a one-way function of the secret), and the stored digest is compared with
``hmac.compare_digest``, so response timing says nothing about the secret. The lookup itself runs in
the gate script together with rate limiting (``ratelimit.Gate``).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from agent_sessions.errors import Forbidden, Unauthorized

SECRET_RE = re.compile(r"ask_[A-Za-z0-9_-]{24,128}")
KEY_ID_RE = re.compile(r"kid_[0-9a-f]{12}")


class Role(StrEnum):
    VIEWER = "viewer"
    EDITOR = "editor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]


_RANKS = {role: rank for rank, role in enumerate(Role)}


@dataclass(frozen=True)
class ApiKey:
    id: str
    name: str
    role: Role
    agents: tuple[str, ...]
    rate: float | None
    burst: int | None
    created_at: int
    revoked_at: int | None
    session: str | None = None  # a client token limited to one session
    token: bool = False  # a client token (``tokens.ClientToken.limit``), not the key itself

    @classmethod
    def from_fields(cls, fields: dict[str, str]) -> ApiKey:
        return cls(
            id=fields["id"],
            name=fields.get("name", ""),
            role=Role(fields["role"]),
            agents=tuple(a for a in fields.get("agents", "").split(",") if a),
            rate=float(fields["rate"]) if fields.get("rate") else None,
            burst=int(fields["burst"]) if fields.get("burst") else None,
            created_at=int(fields.get("created_at", "0")),
            revoked_at=int(fields["revoked_at"]) if fields.get("revoked_at") else None,
        )

    def allows_agent(self, agent: str) -> bool:
        return not self.agents or agent in self.agents


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def new_key(
    role: Role, agents: tuple[str, ...] = (), name: str = "", rate: float | None = None, burst: int | None = None
) -> tuple[ApiKey, str]:
    """A new key and its secret (shown once; only its digest is stored)."""
    key = ApiKey(
        id="kid_" + secrets.token_hex(6),
        name=name,
        role=role,
        agents=agents,
        rate=rate,
        burst=burst,
        created_at=int(time.time() * 1000),
        revoked_at=None,
    )
    return key, "ask_" + secrets.token_urlsafe(24)


def presented(x_api_key: str | None, authorization: str | None) -> str:
    """The credential a request's headers carry: an API key (``x-api-key``, or ``Authorization: Bearer``)
    or a client token (``Authorization: Bearer act_…``), not yet checked."""
    if x_api_key:
        return x_api_key.strip()
    if authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization header must be 'Bearer <key or token>'")
        return value.strip()
    raise Unauthorized("missing API key: send it as the x-api-key header (or a client token as a Bearer token)")


def secret_from_headers(x_api_key: str | None, authorization: str | None) -> str:
    """An API key from the headers (a client token is refused)."""
    secret = presented(x_api_key, authorization)
    if not SECRET_RE.fullmatch(secret):
        raise Unauthorized("malformed API key")
    return secret


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


# What an endpoint lets client tokens do: nothing, act on their agent, or also on their one session.
TOKENS_NONE, TOKENS_AGENT, TOKENS_SESSION = "", "agent", "session"


def authorize(
    key: ApiKey,
    need: Role,
    agent: str | None = None,
    any_agent: bool = True,
    session: str | None = None,
    tokens: str = TOKENS_NONE,
) -> None:
    """Raise ``Forbidden`` unless ``key`` has at least role ``need`` and may act on ``agent`` (and, for a
    client token, on ``session`` through an endpoint that takes ``tokens``).

    A key limited to some agents gets 403 for any other agent, whether or not it exists (no existence
    oracle). ``any_agent=False`` marks operations on no single agent (creating one), which only an
    unlimited key may do. A client token acts only where the endpoint takes tokens (never on keys,
    tokens, webhook endpoints or rules); one limited to a session only on that session.
    """
    if key.token:
        if not tokens or (key.session is not None and tokens != TOKENS_SESSION):
            raise Forbidden("a client token cannot do this")
        if key.session is not None and session is not None and session != key.session:
            raise Forbidden("this client token is limited to another session")
    if key.role.rank < need.rank:
        kind = "client token" if key.token else "key"
        raise Forbidden(f"{article(key.role)} {key.role} {kind} cannot do this; it needs the {need} role")
    if agent is not None and not key.allows_agent(agent):
        raise Forbidden("this key is not allowed to access this agent")
    if agent is None and not any_agent and key.agents:
        raise Forbidden("a key limited to some agents cannot do this")
