"""Rate limiting: Redis token buckets per API key, plus a bucket of failed authentications per
client address (so guessing keys is slow, and a throttled address is not even looked up).

Both run inside ``lua/gate.lua`` together with the key lookup: one round trip in front of every
authenticated request. Refill is computed from Redis ``TIME``, so any number of API processes share
each bucket exactly; the Redis client never retries (``redis_client``), so a bucket is never charged
twice for one request. When Redis is down the gate cannot authenticate anyone either: the request gets
the same fast 503 as the rest of the API (fail closed, never unlimited).
"""

from __future__ import annotations

import hmac
import math
from dataclasses import dataclass
from typing import Any, cast

import redis.asyncio as aioredis

from agent_sessions import lua
from agent_sessions.auth import ApiKey, digest, record_key
from agent_sessions.errors import RateLimited, Unauthorized
from agent_sessions.redis_client import outage_as_unavailable

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
        window = math.ceil(self.burst / self.rate)
        return [
            ("RateLimit-Policy", f'"{POLICY}";q={self.burst};w={window}'),
            ("RateLimit", f'"{POLICY}";r={self.remaining};t={math.ceil(self.next_token_ms / 1000)}'),
        ]


def retry_after(ms: int) -> int:
    """Whole seconds, rounded up, never 0 (a client told 0 would retry at once and be refused)."""
    return max(1, math.ceil(ms / 1000))


class Gate:
    def __init__(self, client: aioredis.Redis, limits: Limits) -> None:
        self.limits = limits
        self._script = client.register_script(lua.source("gate"))

    async def admit(self, secret: str, address: str) -> tuple[ApiKey, Quota, bool]:
        """Authenticate ``secret`` and take a token: (key, quota, allowed).

        Raises ``RateLimited`` when the address is throttled for failed authentications and
        ``Unauthorized`` for an unknown or revoked key.
        """
        key_digest = digest(secret)
        limits = self.limits
        async with outage_as_unavailable():
            reply = cast(
                list[Any],
                await self._script(
                    keys=[record_key(key_digest), f"as:rl:key:{key_digest}", f"as:rl:addr:{address}"],
                    args=[limits.rate, limits.burst, limits.failure_rate, limits.failure_burst],
                ),
            )
        status = reply[0]
        if status == "throttled":
            raise RateLimited(
                retry_after(int(reply[1])), "too many failed authentications from this address", reason="address"
            )
        if status != "ok" and status != "limited":
            raise Unauthorized("API key revoked" if status == "revoked" else "unknown API key")
        fields = dict(zip(reply[5::2], reply[6::2], strict=True))
        if not hmac.compare_digest(fields.get("digest", ""), key_digest):
            raise Unauthorized("unknown API key")
        quota = Quota(float(reply[3]), int(reply[4]), remaining=int(reply[1]), next_token_ms=int(reply[2]))
        return ApiKey.from_fields(fields), quota, status == "ok"
