"""Rate limiting: Redis token buckets per API key, plus a bucket of failed authentications per
client address. The address bucket refuses only invalid keys: a valid key is never locked out by
what others sent from the same address (a NAT, a proxy). The client address is the TCP peer's, or
the one a proxy named in ``FORWARDED_ALLOW_IPS`` put in ``X-Forwarded-For``.

Both run inside the gate (``lua/_gate.lua``) together with the key lookup: one round trip in front of
an authenticated request, or none of its own for a PATCH by a key this process has seen before: the
update script runs the gate first and writes only if it admits the request (``Admission``). Refill
is computed from Redis ``TIME``, so any number of API processes share each bucket exactly; the Redis
client never retries (``redis.client``), so a bucket is never charged twice for one request. When
Redis is down the gate cannot authenticate anyone either: the request gets the same fast 503 as the
rest of the API (fail closed, never unlimited).
"""

from __future__ import annotations

import hmac
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, cast

import redis.asyncio as aioredis

from agent_sessions.access import lua
from agent_sessions.access.auth import ApiKey
from agent_sessions.access.lua import GateArgs, GateKeys
from agent_sessions.errors import RateLimited, Unauthorized
from agent_sessions.redis.client import Batches, is_cluster
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.replies import raise_for
from agent_sessions.redis.scripts import Script

POLICY = "default"


@dataclass(frozen=True)
class Limits:
    rate: float  # tokens per second, for keys without their own
    burst: int
    failure_rate: float  # failed authentications per second and address
    failure_burst: int


@dataclass(frozen=True)
class Quota:
    """A key's bucket after this request: what the RateLimit headers report."""

    rate: float
    burst: int
    remaining: int
    next_token_ms: int  # until the next whole token is added (0 when the bucket is full)

    def headers(self) -> list[tuple[str, str]]:
        return [
            ("RateLimit-Policy", _policy(self.rate, self.burst)),
            ("RateLimit", f'"{POLICY}";r={self.remaining};t={math.ceil(self.next_token_ms / 1000)}'),
        ]


@lru_cache(maxsize=256)
def _policy(rate: float, burst: int) -> str:
    return f'"{POLICY}";q={burst};w={math.ceil(burst / rate)}'


def _verdict(reply: list[Any]) -> tuple[str, Quota]:
    """The gate's reply -> ("ok" | "limited", the key's quota); raises for a refused authentication."""
    status = reply[0]
    if status == "throttled":
        raise RateLimited(
            retry_after(int(reply[1])), "too many failed authentications from this address", reason="address"
        )
    if status != "ok" and status != "limited":
        raise_for(status)
        raise Unauthorized("unknown API key")  # a status the gate does not give: refuse all the same
    return status, Quota(float(reply[3]), int(reply[4]), remaining=int(reply[1]), next_token_ms=int(reply[2]))


class Admission:
    """The gate, to be run by the update script before it writes (one round trip for both; the store's
    ``Admission`` protocol). ``settle`` takes the gate's verdict, charges a refused key to its address
    as the gate does, reports the quota and raises ``RateLimited`` or ``Unauthorized`` when the request
    was refused (the script then wrote nothing)."""

    __slots__ = ("address", "gate", "key_digest", "limits", "on_quota")

    def __init__(self, gate: Gate, key_digest: str, address: str, on_quota: Callable[[Quota], None]) -> None:
        self.gate, self.key_digest, self.address, self.on_quota = gate, key_digest, address, on_quota
        self.limits = gate.limits.rate, gate.limits.burst

    async def settle(self, verdict: list[Any]) -> None:
        if verdict[0] != "ok":
            verdict = await self.gate._charged(self.address, verdict)
        try:
            status, quota = _verdict(verdict)
        except Unauthorized:
            self.gate._known.pop(self.key_digest, None)  # refused: revoked, or gone with a flushed Redis
            raise
        self.on_quota(quota)
        if status != "ok":
            raise RateLimited(retry_after(quota.next_token_ms))


def retry_after(ms: int) -> int:
    """Whole seconds, rounded up, never 0 (a client told 0 would retry at once and be refused)."""
    return max(1, math.ceil(ms / 1000))


class Gate:
    """Authentication and rate limiting. Keeps the records of keys it admitted (role and agents never
    change after a key is created), so a PATCH by a known key can be authorized before any round trip
    and admitted by the update script itself; whether the key is revoked, and its bucket, are still
    checked in Redis on every request."""

    KNOWN_MAX = 10_000

    def __init__(self, client: aioredis.Redis, keys: Keys, limits: Limits, batches: Batches | None = None) -> None:
        self.limits = limits
        self.keys = keys
        batches = batches or Batches(client)
        self._script = Script(batches, lua.GATE)
        self._failure = Script(batches, lua.AUTH_FAILURE)
        self._known: dict[str, ApiKey] = {}
        # On a Redis Cluster a key's record is in another slot than the agent's keys: no admission in
        # the write, every request goes through the gate first (one more round trip for a PATCH).
        self._admits_in_write = not is_cluster(client)

    def known(self, key_digest: str) -> ApiKey | None:
        """The record of the key with this digest if this process admitted it before (it may have been
        revoked since), when the update script may admit the request itself."""
        return self._known.get(key_digest) if self._admits_in_write else None

    async def admit(self, key_digest: str, address: str) -> tuple[ApiKey, Quota, bool]:
        """Authenticate the key whose digest this is and take a token: (key, quota, allowed).

        Raises ``Unauthorized`` for an unknown or revoked key, or ``RateLimited`` instead when its
        address has failed too often.
        """
        keys: GateKeys = {"key_record": self.keys.api_key(key_digest), "key_bucket": self.keys.key_bucket(key_digest)}
        limits: GateArgs = {"default_rate": self.limits.rate, "default_burst": self.limits.burst}
        reply = cast(list[Any], await self._script(keys, limits))
        reply = await self._charged(address, reply)
        try:
            status, quota = _verdict(reply)
        except Unauthorized:
            self._known.pop(key_digest, None)
            raise
        fields = dict(zip(reply[5::2], reply[6::2], strict=True))
        if not hmac.compare_digest(fields.get("digest", ""), key_digest):
            raise Unauthorized("unknown API key")
        key = ApiKey.from_fields(fields)
        if key_digest not in self._known:
            if len(self._known) >= self.KNOWN_MAX:
                del self._known[next(iter(self._known))]  # the oldest entry: it is only a shortcut
            self._known[key_digest] = key
        return key, quota, status == "ok"

    async def _charged(self, address: str, verdict: list[Any]) -> list[Any]:
        """The gate's verdict, with a failed authentication ("unknown", "revoked") charged to its address:
        then {verdict} (401), or {"throttled", ms} (429)."""
        if verdict[0] != "unknown" and verdict[0] != "revoked":
            return verdict
        return cast(
            list[Any],
            await self._failure(
                {"address_bucket": self.keys.address_bucket(address)},
                {
                    "failure_rate": self.limits.failure_rate,
                    "failure_burst": self.limits.failure_burst,
                    "verdict": verdict[0],
                },
            ),
        )

    def admission(self, key_digest: str, address: str, on_quota: Callable[[Quota], None]) -> Admission:
        return Admission(self, key_digest, address, on_quota)
