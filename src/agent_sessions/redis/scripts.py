"""The one registry of Lua scripts, and the one way to run them: by name, with EVALSHA, loading the
script again when Redis has forgotten it (a restart, ``SCRIPT FLUSH``).

- ``Script``: for the API (asyncio). Calls are batched with other requests' calls (``client.Batches``);
  an outage raises ``StoreUnavailable`` and a full Redis ``InsufficientStorage``. ``many`` sends calls
  that must run in order in one pipeline of their own.
- ``SyncScript``: for the workers and the CLI (synchronous, like Dramatiq actors). ``many`` sends many
  calls of one script in one pipeline (no MULTI: each call is atomic on its own).

Both end each pipeline with the client's ``ReplicaAcks`` WAIT when ``REDIS_MIN_REPLICA_ACKS`` is set.

A source whose first line is ``-- prelude: NAME [NAME…]`` gets those files prepended (``_clock``,
``_change``, ``_idempotency``, ``_gate``, ``_log``, ``_index``, ``_remove``, ``_delivery``), so shared
Lua is written once.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib.resources import files
from typing import Any

import redis
from redis.exceptions import MaxConnectionsError, NoScriptError, ResponseError

from agent_sessions.errors import StoreUnavailable
from agent_sessions.redis.acks import NO_REPLICA_ACKS
from agent_sessions.redis.client import Batches, execute_async, execute_sync, first_error, replica_acks
from agent_sessions.redis.outages import OUTAGE_ERRORS, raise_if_full

NAMES = (
    "agent_create",
    "agent_update",
    "agent_delete",
    "agent_purge",
    "session_create",
    "session_update",
    "session_delete",
    "session_get",
    "session_expire",
    "sessions_find",
    "sessions_reindex",
    "history_page",
    "gate",
    "auth_failure",
    "report_apply",
    "escalation_record",
    "events_page",
    "events_trim",
    "events_append",
    "relay_lease",
    "rules_put",
    "webhook_endpoint_create",
    "webhook_endpoint_update",
    "webhook_endpoint_delete",
    "webhook_secret_rotate",
    "delivery_enqueue",
    "delivery_claim",
    "delivery_result",
    "deliveries_page",
)
# Scripts that write nothing a caller is answered for: reads, the rate limiter's buckets (a failover
# that forgets a few spent tokens is harmless) and the delivery claim (leases are retried anyway). They
# never wait for REDIS_MIN_REPLICA_ACKS replicas; every other script does.
UNCONFIRMED = frozenset(
    (
        "history_page",
        "session_get",
        "sessions_find",
        "events_page",
        "deliveries_page",
        "gate",
        "auth_failure",
        "delivery_claim",
    )
)
PRELUDE_MARK = "-- prelude: "
LOAD_WAIT_S = 1.0  # how long a reload waits for a free connection of a busy cluster node
Call = tuple[Sequence[Any], Sequence[Any]]  # (KEYS, ARGV)


@dataclass(frozen=True)
class Lua:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


def _read(name: str) -> str:
    return (files("agent_sessions.redis.lua") / f"{name}.lua").read_text(encoding="utf-8")


@cache
def lua(name: str) -> Lua:
    if name not in NAMES:
        raise KeyError(f"no script {name!r}")
    text = _read(name)
    first = text.split("\n", 1)[0]
    if first.startswith(PRELUDE_MARK):
        text = "".join(_read(prelude) for prelude in first.removeprefix(PRELUDE_MARK).split()) + text
    return Lua(name, text)


class Script:
    """A script run by the API: ``await script(keys, args)``."""

    def __init__(self, batches: Batches, script: str | Lua) -> None:
        self.batches = batches
        self.lua = lua(script) if isinstance(script, str) else script
        self.sha = self.lua.sha
        self.confirm = self.lua.name not in UNCONFIRMED
        self.acks = batches.acks if self.confirm else NO_REPLICA_ACKS
        self._loading = asyncio.Lock()
        self._loads = 0

    async def _load(self) -> None:
        """Loads the script again. The calls that met NOSCRIPT together (a burst of them after a restart
        or a failover) wait for one load. SCRIPT LOAD is idempotent, so when every connection of a
        cluster node is busy it is sent again until one is free (redis-py's cluster client refuses at
        once instead of waiting), for up to ``LOAD_WAIT_S``."""
        loads = self._loads
        async with self._loading:
            if self._loads != loads:
                return
            deadline = time.monotonic() + LOAD_WAIT_S
            while True:
                try:
                    await self.batches.client.script_load(self.lua.source)
                    break
                except MaxConnectionsError:
                    if time.monotonic() > deadline:
                        raise
                    await asyncio.sleep(0.001)
            self._loads += 1

    async def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        # Every PATCH runs through here: the error mapping is written out rather than shared with
        # ``many`` through a wrapper (a closure and one more await per call).
        try:
            try:
                return await self.batches.evalsha(self.sha, keys, args, self.confirm)
            except NoScriptError:
                await self._load()
                return await self.batches.evalsha(self.sha, keys, args, self.confirm)
        except OUTAGE_ERRORS as exc:
            raise StoreUnavailable() from exc
        except ResponseError as exc:
            raise_if_full(exc)
            raise

    async def many(self, calls: Sequence[Call]) -> list[Any]:
        """Many calls in one pipeline of their own, run in the order given (the shared batches may run
        concurrent calls in any order). See ``forgotten`` for a node that had forgotten the script."""
        try:
            results = await self._send(calls)
            missing = forgotten(results)
            if missing:
                await self._load()
                again = await self._send([calls[i] for i in missing])
                for i, result in zip(missing, again, strict=True):
                    results[i] = result
            return first_error(results)
        except OUTAGE_ERRORS as exc:
            raise StoreUnavailable() from exc
        except ResponseError as exc:
            raise_if_full(exc)
            raise

    async def _send(self, calls: Sequence[Call]) -> list[Any]:
        commands = [("EVALSHA", self.sha, len(keys), *keys, *args) for keys, args in calls]
        return await execute_async(self.batches.client, commands, [keys[0] for keys, _ in calls], self.acks)


def forgotten(results: list[Any]) -> list[int]:
    """Where a pipeline's calls met a node that had forgotten the script (a restart, ``SCRIPT FLUSH``,
    a replica promoted: scripts are not replicated): those did not run, and only those are sent again
    once it is loaded. On a cluster the other nodes' calls did run; a node forgets all of a script's
    calls at once, so the calls sent again keep their order among their node's."""
    return [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]


class SyncScript:
    """A script run by a worker or the CLI: ``script(keys, args)``, or ``script.many(calls)``."""

    def __init__(self, client: redis.Redis, script: str | Lua) -> None:
        self.client = client
        self.lua = lua(script) if isinstance(script, str) else script
        self.sha = self.lua.sha
        self.acks = replica_acks(client) if self.lua.name not in UNCONFIRMED else NO_REPLICA_ACKS

    def __call__(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
        return self.many([(keys, args)])[0]

    def many(self, calls: Sequence[Call]) -> list[Any]:
        """One round trip for all ``calls`` (one per node on a cluster). See ``forgotten``."""
        results = self._send(calls)
        missing = forgotten(results)
        if missing:
            self.client.script_load(self.lua.source)
            again = self._send([calls[i] for i in missing])
            for i, result in zip(missing, again, strict=True):
                results[i] = result
        return first_error(results)

    def _send(self, calls: Sequence[Call]) -> list[Any]:
        commands = [("EVALSHA", self.sha, len(keys), *keys, *args) for keys, args in calls]
        return execute_sync(self.client, commands, [keys[0] for keys, _ in calls], self.acks)
