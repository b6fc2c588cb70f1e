"""API key records in Redis, for the CLI (synchronous: it runs outside any event loop).

A record per key digest (a hash: id, name, role, agents, rate, burst, created_at, digest, revoked_at)
and an index from key ids to digests, for listing and revoking by id. The API reads records through
the gate script (``ratelimit.Gate``), never through this class.
"""

from __future__ import annotations

import time
from typing import cast

import redis

from agent_sessions.access.auth import KEY_ID_RE, SECRET_RE, ApiKey, Role, digest, new_key
from agent_sessions.redis.client import execute_sync, first_error, replica_acks
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.outages import outage_as_unavailable_sync


class Keyring:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def create(
        self,
        role: Role,
        agents: tuple[str, ...] = (),
        name: str = "",
        rate: float | None = None,
        burst: int | None = None,
    ) -> tuple[ApiKey, str]:
        key, secret = new_key(role, agents, name, rate, burst)
        key_digest = digest(secret)
        fields = {
            "id": key.id,
            "name": name,
            "role": role.value,
            "agents": ",".join(agents),
            "rate": "" if rate is None else repr(rate),
            "burst": "" if burst is None else str(burst),
            "created_at": str(key.created_at),
            "digest": key_digest,
        }
        with outage_as_unavailable_sync():
            # Two slots on a Redis Cluster, so two commands, the index first: stopped between them, the
            # index names a record that does not exist (listed as nothing), never a working key unlisted.
            # Each step waits for REDIS_MIN_REPLICA_ACKS replicas before the next.
            acks, record = replica_acks(self.redis), self.keys.api_key(key_digest)
            first_error(
                execute_sync(self.redis, [("HSET", self.keys.api_keys, key.id, key_digest)], [self.keys.api_keys], acks)
            )
            command = ("HSET", record, *(item for pair in fields.items() for item in pair))
            first_error(execute_sync(self.redis, [command], [record], acks))
        return key, secret

    def list(self) -> list[ApiKey]:
        with outage_as_unavailable_sync():
            index = cast(dict[str, str], self.redis.hgetall(self.keys.api_keys))
            pipe = self.redis.pipeline(transaction=False)
            for key_digest in index.values():
                pipe.hgetall(self.keys.api_key(key_digest))
            records = pipe.execute()
        keys = [ApiKey.from_fields(fields) for fields in records if fields]
        return sorted(keys, key=lambda k: (k.created_at, k.id))

    def is_active(self, secret: str) -> bool:
        with outage_as_unavailable_sync():
            fields = cast(dict[str, str], self.redis.hgetall(self.keys.api_key(digest(secret))))
        return bool(fields) and not fields.get("revoked_at")

    def revoke(self, id_or_secret: str) -> ApiKey | None:
        """Revoke by key id or by the key itself; ``None`` when no such key exists."""
        with outage_as_unavailable_sync():
            if KEY_ID_RE.fullmatch(id_or_secret):
                key_digest = cast(str | None, self.redis.hget(self.keys.api_keys, id_or_secret))
            elif SECRET_RE.fullmatch(id_or_secret):
                key_digest = digest(id_or_secret)
            else:
                return None
            if key_digest is None or not self.redis.exists(self.keys.api_key(key_digest)):
                return None
            record = self.keys.api_key(key_digest)
            # A revocation a failover forgets is no revocation: it waits for REDIS_MIN_REPLICA_ACKS replicas.
            command = ("HSETNX", record, "revoked_at", str(int(time.time() * 1000)))
            first_error(execute_sync(self.redis, [command], [record], replica_acks(self.redis)))
            return ApiKey.from_fields(cast(dict[str, str], self.redis.hgetall(record)))
