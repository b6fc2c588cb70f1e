"""The one registry of Lua scripts, and the one way to run them: by name, with EVALSHA, loading the
script again when Redis has forgotten it (a restart, ``SCRIPT FLUSH``).

Each script's KEYS and ARGV are declared once, by name and in order (``declare``: a ``TypedDict`` of
each, so that a caller names every one and mypy checks the names), and a caller passes them by name:
``await script(KeysOf(...), ArgsOf(...))``. What follows the declared ones, when a script takes a
variable tail (field/value pairs, one key per index), is named too (``more_keys``, ``more_args``) and
passed apart. The script's header says the same (``-- KEYS: a, b, c`` and ``-- ARGV: d, e, rest...``),
and ``tests/unit/test_script_declarations.py`` holds every header to its declaration.

- ``Script``: for the API (asyncio). Calls are batched with other requests' calls (``client.Batches``);
  an outage raises ``StoreUnavailable`` and a full Redis ``InsufficientStorage``. ``many`` sends calls
  that must run in order in one pipeline of their own.
- ``SyncScript``: for the workers and the CLI (synchronous, like Dramatiq actors). ``many`` sends many
  calls of one script in one pipeline (no MULTI: each call is atomic on its own).

Both end each pipeline with the client's ``ReplicaAcks`` WAIT when ``REDIS_MIN_REPLICA_ACKS`` is set.

A source whose first line is ``-- prelude: NAME [NAME…]`` gets those files prepended (``_clock``,
``_change``, ``_idempotency``, ``_gate``, ``_log``, ``_index``, ``_remove``, ``_delivery``), so shared
Lua is written once. Of a prelude's functions (``local function NAME(`` to an ``end`` at the start of a
line) only those the script uses, itself or through another, are prepended: Lua makes every local
function of a script anew on every call, and the update script made six it never called (0.6-1.2 µs of
Redis per call, measured against the same script with them). The rest of a prelude (its comments, its
shared locals) is kept.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cache, cached_property
from importlib.resources import files
from typing import Any, Generic, TypeVar

import redis
from redis.exceptions import MaxConnectionsError, NoScriptError, ResponseError
from typing_extensions import TypedDict

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
Arg = str | bytes | int | float  # what an ARGV entry may be given as (Redis receives them all as strings)
Call = tuple[Sequence[Any], Sequence[Any]]  # (KEYS, ARGV), positional: made by ``Declared.positions``
K = TypeVar("K", bound=Mapping[str, object])
A = TypeVar("A", bound=Mapping[str, object])
DECLARED: dict[str, Declared[Any, Any]] = {}


@dataclass(frozen=True)
class Lua:
    name: str
    source: str

    @property
    def sha(self) -> str:
        return hashlib.sha1(self.source.encode()).hexdigest()


@dataclass(frozen=True)
class Declared(Generic[K, A]):
    """A script's KEYS and ARGV: their names in order (the fields of ``keys`` and of ``args``), and the
    names of the variable tails that follow them, if the script takes any."""

    name: str
    keys: type[K]
    args: type[A]
    more_keys: str = ""
    more_args: str = ""
    source: Lua | None = None  # None: lua/<name>.lua (given: a script of a test's own)

    @cached_property
    def lua(self) -> Lua:
        return self.source or lua(self.name)

    @cached_property
    def key_names(self) -> tuple[str, ...]:
        return tuple(self.keys.__annotations__)

    @cached_property
    def arg_names(self) -> tuple[str, ...]:
        return tuple(self.args.__annotations__)

    def positions(self, keys: K, args: A, more_keys: Sequence[Any] = (), more_args: Sequence[Any] = ()) -> Call:
        """KEYS and ARGV in the script's order."""
        # map, not a generator: this runs for every PATCH, and a generator is a Python call per item
        return [*map(keys.__getitem__, self.key_names), *more_keys], [
            *map(args.__getitem__, self.arg_names),
            *more_args,
        ]


def declare(name: str, keys: type[K], args: type[A], more_keys: str = "", more_args: str = "") -> Declared[K, A]:
    """Declare script ``name`` (once: a second declaration is an error)."""
    if name in DECLARED or name not in NAMES:
        raise ValueError(f"script {name!r} declared twice, or no such script")
    declared = DECLARED[name] = Declared(name, keys, args, more_keys, more_args)
    return declared


class NoKeys(TypedDict):
    pass


class NoArgs(TypedDict):
    pass


def _read(name: str) -> str:
    return (files("agent_sessions.redis.lua") / f"{name}.lua").read_text(encoding="utf-8")


@cache
def lua(name: str) -> Lua:
    if name not in NAMES:
        raise KeyError(f"no script {name!r}")
    text = _read(name)
    first = text.split("\n", 1)[0]
    if first.startswith(PRELUDE_MARK):
        text = _used("".join(_read(prelude) for prelude in first.removeprefix(PRELUDE_MARK).split()), text) + text
    return Lua(name, text)


_FUNCTION = re.compile(r"^local function (\w+)\(.*?^end\n", re.M | re.S)


def _used(preludes: str, body: str) -> str:
    """``preludes`` less the functions that neither ``body`` nor a function kept calls, in their order."""
    functions = {m.group(1): m.group(0) for m in _FUNCTION.finditer(preludes)}
    kept: set[str] = set()
    reached = [body]
    while reached:
        text = reached.pop()
        for fn in functions.keys() - kept:
            if re.search(rf"\b{fn}\b", text):
                kept.add(fn)
                reached.append(functions[fn])
    return _FUNCTION.sub(lambda m: m.group(0) if m.group(1) in kept else "", preludes)


class Script(Generic[K, A]):
    """A script run by the API: ``await script(keys, args)`` (by name, as declared)."""

    def __init__(self, batches: Batches, declared: Declared[K, A]) -> None:
        self.batches = batches
        self.declared = declared
        self.key_names, self.arg_names = declared.key_names, declared.arg_names
        self.lua = declared.lua
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

    async def __call__(self, keys: K, args: A, more_keys: Sequence[Any] = (), more_args: Sequence[Any] = ()) -> Any:
        # Every PATCH runs through here: the names are put in order here rather than by
        # ``Declared.positions`` (one Python call less), and the error mapping is written out rather
        # than shared with ``many`` through a wrapper (a closure and one more await per call).
        keys_at = [*map(keys.__getitem__, self.key_names), *more_keys]
        args_at = [*map(args.__getitem__, self.arg_names), *more_args]
        return await self.positional(keys_at, args_at)

    async def positional(self, keys: Sequence[Any], args: Sequence[Any]) -> Any:
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

    def call(self, keys: K, args: A, more_keys: Sequence[Any] = (), more_args: Sequence[Any] = ()) -> Call:
        """One call of ``many``: the declared names put in the script's order."""
        return self.declared.positions(keys, args, more_keys, more_args)

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


class SyncScript(Generic[K, A]):
    """A script run by a worker or the CLI: ``script(keys, args)`` (by name, as declared), or
    ``script.many(calls)`` (each call's positions from ``call``)."""

    def __init__(self, client: redis.Redis, declared: Declared[K, A]) -> None:
        self.client = client
        self.declared = declared
        self.lua = declared.lua
        self.sha = self.lua.sha
        self.acks = replica_acks(client) if self.lua.name not in UNCONFIRMED else NO_REPLICA_ACKS

    def __call__(self, keys: K, args: A, more_keys: Sequence[Any] = (), more_args: Sequence[Any] = ()) -> Any:
        return self.many([self.call(keys, args, more_keys, more_args)])[0]

    def call(self, keys: K, args: A, more_keys: Sequence[Any] = (), more_args: Sequence[Any] = ()) -> Call:
        """One call of ``many``: the declared names put in the script's order."""
        return self.declared.positions(keys, args, more_keys, more_args)

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
