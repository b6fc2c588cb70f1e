"""Which key layout a store is in, and with how many partitions: recorded in the store (``layout``),
checked by every process before it touches an agent's keys.

- A store with no record and no agents is new: the first process records the current layout and its
  ``PARTITIONS`` (``HSETNX``, so two processes started at once with different values cannot both win:
  each reads the record back and the loser refuses).
- A store with agents and no record was written before the record existed (layout 1, untagged keys):
  refused until ``agent-sessions migrate`` has moved it (``migrate.py``).
- A record with another ``PARTITIONS`` is refused: every agent's keys would be looked for under
  another tag, and the agent would seem not to exist.

The API checks at start and, if Redis cannot be reached then, before its first request that can
(``Guard``): it never writes an agent's keys under an unchecked layout. The workers wait for Redis
at start to check.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import redis
import redis.asyncio as aioredis

from agent_sessions.errors import ConfigError, StoreUnavailable
from agent_sessions.redis.client import is_cluster
from agent_sessions.redis.keys import LAYOUT, Keys
from agent_sessions.redis.outages import OUTAGE_ERRORS
from agent_sessions.redis.topology import CLUSTER_UNSEEN

log = logging.getLogger(__name__)


def _read(pipe: Any, keys: Keys) -> Any:
    pipe.hgetall(keys.layout)
    pipe.exists(keys.layout1("agents"))  # one key per command: on a cluster they are in other slots
    pipe.exists(keys.layout1("purges"))
    return pipe


def _record(pipe: Any, keys: Keys) -> Any:
    # HSETNX, read back in the same MULTI: whoever wrote the record first, every process compares with it.
    pipe.hsetnx(keys.layout, "version", LAYOUT)
    pipe.hsetnx(keys.layout, "partitions", keys.partitions)
    pipe.hgetall(keys.layout)
    return pipe


def _judge(record: dict[str, str], earlier_data: int, keys: Keys) -> None:
    if not record and earlier_data:
        raise ConfigError(
            "this store was written by an earlier version (key layout 1): stop every process of that version"
            " and run `agent-sessions migrate` first"
        )
    if not record:
        return  # a new store: recorded next
    version, partitions = int(record.get("version", 0)), int(record.get("partitions", 0))
    if version > LAYOUT:
        raise ConfigError(f"this store has key layout {version}, newer than this version's ({LAYOUT})")
    if version < LAYOUT:
        raise ConfigError(f"this store has key layout {version}: run `agent-sessions migrate` first")
    if partitions != keys.partitions:
        raise ConfigError(
            f"this store was made with PARTITIONS={partitions}; this process has PARTITIONS={keys.partitions}."
            f" PARTITIONS is fixed for the life of a store: start every process with PARTITIONS={partitions}"
        )


def check(client: redis.Redis, keys: Keys) -> None:
    """Check (or, on a new store, record) the layout; raises ``ConfigError``, or ``StoreUnavailable``."""
    try:
        record, *earlier_data = _read(client.pipeline(transaction=False), keys).execute()
        _judge(record, sum(earlier_data), keys)
        if not record:
            _judge(_record(client.pipeline(transaction=True), keys).execute()[-1], 0, keys)
    except OUTAGE_ERRORS as exc:
        raise StoreUnavailable() from exc


def wait_and_check(client: redis.Redis, keys: Keys, every_s: float = 1.0) -> None:
    """``check``, waiting for Redis while it cannot be reached (a worker has nothing to do without it)."""
    said = False
    while True:
        try:
            check(client, keys)
            return
        except StoreUnavailable:
            if not said:
                log.warning("redis unreachable at start; waiting for it to check the key layout")
                said = True
            time.sleep(every_s)


class Guard:
    """The API's check: made at start, and before each request until it has been made once."""

    def __init__(self, client: aioredis.Redis, keys: Keys) -> None:
        self.client = client
        self.keys = keys
        self.checked = False
        self._refused = False

    async def start(self) -> None:
        """At start: a refusal raises ``ConfigError`` (the API does not start); an outage is checked
        again at the next request."""
        try:
            await self._check(ask_cluster=False)  # the topology check has just asked
        except StoreUnavailable:
            log.warning("redis unreachable at start; the key layout is checked at the first request")

    async def ensure(self) -> None:
        """Raises ``StoreUnavailable`` (503) until the check has been made, and for good if it refused
        (a process that found the store's layout or PARTITIONS wrong only after its start; logged)."""
        if self._refused:
            raise StoreUnavailable("this process is misconfigured for this store; see its log")
        try:
            await self._check(ask_cluster=True)
        except ConfigError as exc:
            log.error("%s", exc)
            self._refused = True
            raise StoreUnavailable("this process is misconfigured for this store; see its log") from exc

    async def _check(self, ask_cluster: bool) -> None:
        try:
            if ask_cluster and not is_cluster(self.client):
                # Made while Redis was down, this client could not tell a cluster node: ask now.
                info = await self.client.info("cluster")
                if int(info.get("cluster_enabled", 0)):
                    raise ConfigError(CLUSTER_UNSEEN)
            record, *earlier_data = await _read(self.client.pipeline(transaction=False), self.keys).execute()
            _judge(record, sum(earlier_data), self.keys)
            if not record:
                _judge((await _record(self.client.pipeline(transaction=True), self.keys).execute())[-1], 0, self.keys)
        except OUTAGE_ERRORS as exc:
            raise StoreUnavailable() from exc
        self.checked = True
