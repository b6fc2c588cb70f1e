"""The cost of a PATCH, guarded deterministically (speed itself is measured by ``make bench``, never here):

- the Redis commands one PATCH runs (``INFO commandstats`` call counts on a private Redis, the update
  script's own calls included), and
- the Python function calls one warmed PATCH makes in the API process (``cProfile``'s count, the ASGI
  app driven directly, the request's whole path: the edge, authentication, validation, the script
  call, the answer, the access log and the metrics).

Both are checked against ``tests/data/patch_budget.json``. A change that raises one raises its budget in
the same commit, with the ``make bench`` figures (ratio, CPU per PATCH) in the commit message.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import json
import pstats
from pathlib import Path
from typing import Any, cast

import orjson
import pytest
import redis

from agent_sessions.access.auth import ApiKey, Role, digest
from agent_sessions.access.tokens import Signer
from agent_sessions.config import Settings
from agent_sessions.redis.client import sync_client
from agent_sessions.web.access import AccessLog
from agent_sessions.web.app import create_app
from tests.support.api import SEED_AGENT, SEED_REQUEST, SEED_SESSION, URL, MakeKey
from tests.support.keys import KEYS

BUDGET = json.loads((Path(__file__).parent.parent / "data" / "patch_budget.json").read_text())


class Driver:
    """The app's lifespan and requests, without a server: ASGI messages in, the answer's status out."""

    def __init__(self, app: Any) -> None:
        self.app = app
        self.inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.outbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.inbox.put({"type": "lifespan.startup"})
        self.task = asyncio.create_task(
            self.app({"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}, self.inbox.get, self.outbox.put)
        )
        assert (await self.outbox.get())["type"] == "lifespan.startup.complete"

    async def stop(self) -> None:
        await self.inbox.put({"type": "lifespan.shutdown"})
        assert (await self.outbox.get())["type"] == "lifespan.shutdown.complete"

    async def patch(self, credential: tuple[bytes, bytes], n: int, origin: str | None = None) -> int:
        metadata: dict[str, Any] = dict(SEED_REQUEST["metadata"])  # type: ignore[call-overload]
        body = orjson.dumps({**SEED_REQUEST, "metadata": {**metadata, "seq": n}})
        headers = [
            (b"host", b"127.0.0.1"),
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            credential,
            *([(b"origin", origin.encode())] if origin else []),
        ]
        scope = {
            "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "PATCH", "scheme": "http",
            "path": URL, "raw_path": URL.encode(), "query_string": b"", "root_path": "", "headers": headers,
            "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000),
        }  # fmt: skip
        messages = [{"type": "http.request", "body": body, "more_body": False}]
        status = 0

        async def receive() -> dict[str, Any]:
            return messages.pop() if messages else await asyncio.Future()

        async def send(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]

        await self.app(scope, receive, send)
        return status


@pytest.fixture
def seeded_store(client: Any, admin: dict[str, str], seeded: Any) -> None:
    """The seed's agent and session (made through the API), for a PATCH to change."""


def measured(
    redis_url: str, credential: tuple[bytes, bytes], origin: str | None = None, history_max: int = 1000
) -> tuple[dict[str, int], int]:
    """One warmed PATCH: the Redis commands it ran (name -> calls) and the Python calls it made.
    ``origin``: allowed by CORS_ALLOW_ORIGINS, and the PATCH sent from it (as a browser page's).
    ``history_max``: HISTORY_MAX (the warm-up's PATCHes fill a history of 2 entries or fewer)."""
    settings = Settings(
        redis_url=redis_url,
        client_tokens=True,
        client_token_secret="t" * 40,
        cors_allow_origins=(origin,) if origin else (),
        history_max=history_max,
    )
    conn = redis.Redis.from_url(redis_url, decode_responses=True)

    async def run() -> tuple[dict[str, int], int]:
        driver = Driver(create_app(settings, AccessLog("json", stream=io.StringIO())))
        await driver.start()
        for n in range(3):  # warm: the key is known, the script loaded, the caches filled
            assert await driver.patch(credential, n, origin) == 200
        conn.config_resetstat()
        profile = cProfile.Profile()
        profile.enable()
        status = await driver.patch(credential, 99, origin)
        profile.disable()
        assert status == 200
        stats = conn.info("commandstats")
        await driver.stop()
        calls = pstats.Stats(profile).total_calls  # type: ignore[attr-defined]
        commands = {
            name.removeprefix("cmdstat_"): int(v["calls"]) for name, v in stats.items() if name != "cmdstat_config"
        }
        return commands, int(calls)

    try:
        return asyncio.run(run())
    finally:
        conn.close()


def test_a_patch_runs_no_more_redis_commands_than_its_budget(
    redis_url: str, make_key: MakeKey, seeded_store: None
) -> None:
    key = make_key("admin", rate=1e6, burst=10**6)
    commands, _ = measured(redis_url, (b"x-api-key", key.encode()))
    assert commands.pop("evalsha") == 1  # one round trip: the gate runs in the write
    over = {name: n for name, n in commands.items() if n > BUDGET["redis_commands"].get(name, 0)}
    assert not over, f"more Redis commands per PATCH than budgeted: {over} (all: {commands})"
    assert sum(commands.values()) <= sum(BUDGET["redis_commands"].values())


def test_a_patch_at_the_history_bound_drops_one_entry_and_moves_the_byte_total_once(
    redis_url: str, make_key: MakeKey, seeded_store: None
) -> None:
    """A long session's history is at its bound: each PATCH pushes one entry and drops the oldest, with one
    INCRBY of the byte total for both (not an INCRBY and a DECRBY)."""
    key = make_key("admin", rate=1e6, burst=10**6)
    commands, _ = measured(redis_url, (b"x-api-key", key.encode()), history_max=2)
    history = {name: commands.get(name, 0) for name in ("lpush", "rpop", "incrby", "decrby")}
    assert history == {"lpush": 1, "rpop": 1, "incrby": 1, "decrby": 0}
    conn = sync_client(redis_url)
    entries = cast(list[str], conn.lrange(KEYS.history(SEED_AGENT, SEED_SESSION), 0, -1))
    assert len(entries) == 2  # the bound
    total = conn.get(KEYS.history_bytes(SEED_AGENT, SEED_SESSION))
    assert total is not None and int(total) == sum(len(entry.encode()) for entry in entries)


def test_a_patch_with_a_client_token_costs_no_more_round_trips(
    redis_url: str, make_key: MakeKey, seeded_store: None
) -> None:
    """A client token is verified in the API process (a signature), and its minting key is admitted by
    the write itself, as the key's own PATCH is: one round trip, the same commands."""
    key = make_key("admin", rate=1e6, burst=10**6)
    signer = Signer("t" * 40)
    conn = sync_client(redis_url)
    record = ApiKey.from_fields(cast(dict[str, str], conn.hgetall(KEYS.api_key(digest(key)))))
    conn.close()
    token, _ = signer.mint(record, digest(key), SEED_AGENT, SEED_SESSION, Role.EDITOR, 600)
    commands, _ = measured(redis_url, (b"authorization", f"Bearer {token}".encode()))
    by_key, _ = measured(redis_url, (b"x-api-key", key.encode()))
    assert commands == by_key and commands["evalsha"] == 1


def test_a_patch_makes_no_more_python_calls_than_its_budget(
    redis_url: str, make_key: MakeKey, seeded_store: None
) -> None:
    key = (b"x-api-key", make_key("admin", rate=1e6, burst=10**6).encode())
    counts = sorted(measured(redis_url, key)[1] for _ in range(3))
    print(f"{counts[0]} Python calls per PATCH")
    assert counts[0] <= BUDGET["python_calls"], f"{counts[0]} Python calls per PATCH (budget {BUDGET['python_calls']})"


def test_cors_adds_at_most_three_percent_to_a_patch(redis_url: str, make_key: MakeKey, seeded_store: None) -> None:
    """With an origin configured, a PATCH from a page of that origin (its answer gets the CORS headers)
    makes at most 3% more Python calls than a server's, and runs the same Redis commands."""
    key = (b"x-api-key", make_key("admin", rate=1e6, burst=10**6).encode())
    server = min(measured(redis_url, key)[1] for _ in range(3))
    page = [measured(redis_url, key, "https://chat.example.com") for _ in range(3)]
    print(f"{server} Python calls per PATCH; from an allowed origin {min(c for _, c in page)}")
    assert min(calls for _, calls in page) <= server * 1.03
    assert page[0][0] == measured(redis_url, key)[0]
