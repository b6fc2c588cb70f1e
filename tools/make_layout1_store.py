"""Write ``tests/data/layout1_store.json``: a store made by the version before partitioned keys (layout
1), with what that version answered about it, for ``tests/integration/test_migrate.py``.

Run it with that version's code, from a checkout of it (commit 8cded05 made the committed file):

    git worktree add /tmp/layout1 8cded05
    PYTHONPATH=/tmp/layout1/src:/tmp/layout1 .venv/bin/python tools/make_layout1_store.py tests/data/layout1_store.json

The store holds what a layout-1 store in production holds: agents (one deleted, its sessions still to
purge), sessions with metadata, history and a time-to-idle, an Idempotency-Key record, reports built
by the workers, escalation rules and records, a webhook endpoint with a delivery, the event log, and
events still in the outbox (written after the relay last ran). Each key is dumped with its type, value
and time to live; the answers are the JSON bodies of GETs made before the dump.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Any

import orjson
import redis
from starlette.testclient import TestClient
from tests.support.inprocess import InProcess

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app

AGENTS = ("agt_alpha", "agt_beta", "agt_gone")


def dump(conn: Any) -> list[dict[str, Any]]:  # redis.Redis, decoding replies
    rows = []
    for key in sorted(conn.scan_iter("*", count=1000)):
        kind = conn.type(key)
        value: Any
        if kind == "string":
            value = conn.get(key)
        elif kind == "hash":
            value = conn.hgetall(key)
        elif kind == "list":
            value = conn.lrange(key, 0, -1)
        elif kind == "zset":
            value = [[member, score] for member, score in conn.zrange(key, 0, -1, withscores=True)]
        elif kind == "set":
            value = sorted(conn.smembers(key))
        elif kind == "stream":
            value = {
                "entries": [[entry_id, fields] for entry_id, fields in conn.xrange(key)],
                "groups": [
                    {"name": g["name"], "last_delivered_id": g["last-delivered-id"]} for g in conn.xinfo_groups(key)
                ],
            }
        else:
            raise SystemExit(f"{key}: type {kind} is not dumped")
        rows.append({"key": key, "type": kind, "ttl_ms": conn.pttl(key), "value": value})
    return rows


def make(out: Path) -> None:
    server = RedisServer(Path(tempfile.mkdtemp())).start()
    settings = Settings(redis_url=server.url, webhook_allow_private_networks=True)
    conn = redis.Redis.from_url(server.url, decode_responses=True)
    try:
        _, secret = Keyring(conn, Keys.of(settings)).create(Role.ADMIN, rate=100_000.0, burst=100_000)
        _, editor = Keyring(conn, Keys.of(settings)).create(Role.EDITOR, ("agt_alpha",), rate=100_000.0, burst=100_000)
        admin = {"x-api-key": secret}
        with TestClient(create_app(settings)) as api, InProcess(settings, deliveries=False) as pipeline:

            def ok(response: Any) -> Any:
                assert response.status_code < 300, response.text
                return response.json() if response.content else None

            for agent in AGENTS:
                ok(api.post("/v2/agents", json={"key": agent, "name": agent}, headers=admin))
            ok(
                api.put(
                    "/v2/agents/agt_alpha/escalation_rules",
                    json={"rules": [{"name": "urgent", "path": "metadata.priority", "becomes": ["urgent"]}]},
                    headers=admin,
                )
            )
            ok(
                api.post(
                    "/v2/webhook_endpoints",
                    json={"url": "http://127.0.0.1:9/hook", "event_types": ["session.updated"]},
                    headers=admin,
                )
            )
            priorities = ["low", "high", "urgent"]
            for agent in AGENTS:
                for n in range(6):
                    body: dict[str, Any] = {
                        "key": f"ase_{n}",
                        "description": f"session {n}",
                        "metadata": {"priority": priorities[n % 3], "channel": ["web", "sms"][n % 2]},
                    }
                    if n == 5:
                        body["tti_minutes"] = 600
                    ok(api.post(f"/v2/agents/{agent}/sessions", json=body, headers=admin))
            url = "/v2/agents/agt_alpha/sessions/ase_0"
            ok(api.patch(url, json={"metadata": {"priority": "urgent"}}, headers=admin))
            ok(api.patch(url, json={"description": "second"}, headers={**admin, "idempotency-key": "idem-1"}))
            ok(api.patch("/v2/agents/agt_beta/sessions/ase_1", json={"enabled": False}, headers=admin))
            pipeline.drain()
            ok(api.delete("/v2/agents/agt_gone", headers=admin))  # its sessions: the purge's, not run
            # After the relay last ran: these stay in the outbox until a relay reads them.
            ok(api.patch("/v2/agents/agt_alpha/sessions/ase_2", json={"description": "late"}, headers=admin))
            ok(api.post("/v2/agents/agt_beta/sessions", json={"key": "ase_late"}, headers=admin))

            answers = {
                path: ok(api.get(path, headers=admin))
                for path in (
                    "/v2/agents",
                    "/v2/agents/agt_alpha",
                    "/v2/agents/agt_alpha/sessions",
                    "/v2/agents/agt_beta/sessions",
                    "/v2/agents/agt_alpha/sessions/ase_0",
                    "/v2/agents/agt_alpha/sessions/ase_0/history",
                    "/v2/agents/agt_alpha/report",
                    "/v2/agents/agt_beta/report",
                    "/v2/agents/agt_alpha/escalation_rules",
                    "/v2/agents/agt_alpha/sessions?metadata.priority=urgent",
                    "/v2/events?limit=100",
                )
            }
        data = {"admin": secret, "editor": editor, "answers": answers, "keys": dump(conn)}
        out.write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n")
    finally:
        conn.close()
        server.stop()


if __name__ == "__main__":
    make(Path(sys.argv[1]))
