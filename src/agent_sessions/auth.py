"""API keys and roles.

A key is ``ask_`` + 32 url-safe random characters (24 random bytes). Only its SHA-256 digest is stored
(``redis.apikeys.Keyring``: a record per digest with id, name, role, agents, rate, burst, created_at,
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


def secret_from_headers(x_api_key: str | None, authorization: str | None) -> str:
    if x_api_key:
        secret = x_api_key.strip()
    elif authorization:
        scheme, _, value = authorization.strip().partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("Authorization header must be 'Bearer <key>'")
        secret = value.strip()
    else:
        raise Unauthorized("missing API key: send it as the x-api-key header")
    if not SECRET_RE.fullmatch(secret):
        raise Unauthorized("malformed API key")
    return secret


def article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def authorize(key: ApiKey, need: Role, agent: str | None = None, any_agent: bool = True) -> None:
    """Raise ``Forbidden`` unless ``key`` has at least role ``need`` and may act on ``agent``.

    A key limited to some agents gets 403 for any other agent, whether or not it exists (no existence
    oracle). ``any_agent=False`` marks operations on no single agent (creating one), which only an
    unlimited key may do.
    """
    if key.role.rank < need.rank:
        raise Forbidden(f"{article(key.role)} {key.role} key cannot do this; it needs the {need} role")
    if agent is not None and not key.allows_agent(agent):
        raise Forbidden("this key is not allowed to access this agent")
    if agent is None and not any_agent and key.agents:
        raise Forbidden("a key limited to some agents cannot do this")
