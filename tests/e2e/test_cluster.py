"""The whole service on a real Redis Cluster (three primaries, slots split evenly): `agent-sessions
serve` and `agent-sessions worker` (RabbitMQ broker: Dramatiq's Redis broker cannot use a cluster), the
same code as on one node. Agents land on every primary; their sessions are written, searched, expired
and purged, each report equals a recount, the event log holds every event once, a webhook endpoint
receives what it subscribes to, and `agent-sessions migrate` finds the store in the current layout."""

from __future__ import annotations

import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from redis.crc import key_slot

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import RedisServer
from tests.support.api import IN_CI
from tests.support.cluster import cluster
from tests.support.keys import KEYS
from tests.support.processes import command, env, serve, working
from tests.support.rabbitmq import RABBITMQ_URL, purge_rabbitmq, rabbitmq_available
from tests.support.receiver import Receiver
from tests.support.recount import assert_report_matches, recount
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e
AGENTS = [f"agt_c{n}" for n in range(9)]
SESSIONS = 4
DIMS = ("priority", "channel")


@pytest.fixture
def nodes(tmp_path: Path) -> Iterator[list[RedisServer]]:
    if not rabbitmq_available():
        if IN_CI:
            pytest.fail("RabbitMQ is not reachable on 127.0.0.1:5672 (required in CI)")
        pytest.skip("RabbitMQ is not reachable on 127.0.0.1:5672")
    purge_rabbitmq()
    with cluster(tmp_path, primaries=3) as started:
        yield started


def node_of(nodes: list[RedisServer], key: str) -> int:
    """Which primary serves ``key`` (slots are split evenly, in order)."""
    return key_slot(key.encode()) * len(nodes) // 16384


def test_the_service_runs_on_a_three_primary_cluster(nodes: list[RedisServer], receiver: Receiver) -> None:
    url = nodes[2].url  # any node will do
    conn: redis.Redis = sync_client(url)
    assert {node_of(nodes, KEYS.agent(agent)) for agent in AGENTS} == {0, 1, 2}  # every primary has agents
    secret = Keyring(conn, KEYS).create(Role.ADMIN, rate=1e6, burst=10**6)[1]
    headers = {"x-api-key": secret}
    settings = env(REDIS_URL=url, BROKER_URL=RABBITMQ_URL, WEBHOOK_ALLOW_PRIVATE_NETWORKS="true", RELAY_LINGER_MS="5")
    with serve(settings) as base, working(settings), httpx.Client(base_url=base, headers=headers, timeout=10) as api:

        def ok(response: httpx.Response, status: int = 200) -> Any:
            assert response.status_code == status, response.text
            return response.json() if response.content else None

        hook = ok(
            api.post("/v2/webhook_endpoints", json={"url": receiver.url, "event_types": ["session.escalated"]}), 201
        )
        for agent in AGENTS:
            ok(api.post("/v2/agents", json={"key": agent, "name": agent}), 201)
            for n in range(SESSIONS):
                body = {"key": f"ase_{n}", "metadata": {"priority": "low", "channel": ["web", "sms"][n % 2]}}
                ok(api.post(f"/v2/agents/{agent}/sessions", json=body), 201)
            ok(api.patch(f"/v2/agents/{agent}/sessions/ase_0", json={"metadata": {"priority": "urgent"}}))
            ok(api.patch(f"/v2/agents/{agent}/sessions/ase_1", json={"enabled": False}))
        ok(api.post(f"/v2/agents/{AGENTS[0]}/sessions", json={"key": "ase_idle", "tti_minutes": 0.005}), 201)
        listed = ok(api.get("/v2/agents", params={"limit": 4}))
        assert [a["key"] for a in listed["agents"]] == sorted(AGENTS)[:4] and listed["metadata"]["total_count"] == 9
        urgent = ok(api.get(f"/v2/agents/{AGENTS[4]}/sessions", params={"metadata_filter": "priority = 'urgent'"}))
        assert [s["id"] for s in urgent["sessions"]] == ["ase_0"]

        # Every escalation delivered, signed, once.
        deliveries = receiver.wait_for(len(AGENTS), timeout=60)
        assert len({d.headers["webhook-id"] for d in deliveries}) == len(AGENTS)
        assert all(d.headers["webhook-signature"].startswith("v1,") for d in deliveries)
        # The idle session expires with its event; the reports equal a recount on every primary.
        eventually(lambda: api.get(f"/v2/agents/{AGENTS[0]}/sessions/ase_idle").status_code == 404, timeout=30)
        for agent in AGENTS:

            def caught_up(agent: str = agent) -> bool:
                # The sweep deletes an expired session before the reporting actor has counted its event.
                report, expected = ok(api.get(f"/v2/agents/{agent}/report")), recount(conn, agent, DIMS)
                return bool(report["updates"] == expected["updates"] and report["sessions"] == expected["sessions"])

            eventually(caught_up, f"{agent}'s report", timeout=30)
            assert_report_matches(ok(api.get(f"/v2/agents/{agent}/report")), recount(conn, agent, DIMS))

        # The event log holds every event once, each session's in version order.
        # Per agent: the creates, two updates and the escalation of the first; the idle one, expired.
        total = len(AGENTS) * (SESSIONS + 3) + 2

        def logged() -> list[dict[str, Any]]:
            events: list[dict[str, Any]] = []
            params: dict[str, Any] = {"limit": 1000}
            while True:
                page = ok(api.get("/v2/events", params=params))
                events += page["events"]
                params["after"] = page["metadata"]["next_cursor"]
                if not page["metadata"]["has_more"]:
                    return events

        eventually(lambda: len(logged()) == total, "the event log", timeout=30)
        events = logged()
        assert len({e["event_id"] for e in events}) == total
        assert Counter(e["type"] for e in events)["session.expired"] == 1
        assert Counter(e["type"] for e in events)["session.escalated"] == len(AGENTS)
        changes = [e for e in events if e["type"] != "session.escalated"]  # an escalation follows its update
        versions = [(e["agent_key"], e["session_key"], e["version"]) for e in changes]
        for agent in AGENTS:
            ase_0 = [v for a, s, v in versions if (a, s) == (agent, "ase_0")]
            assert ase_0 == sorted(ase_0) == [1, 2]

        # Deleting an agent purges its sessions from its primary.
        ok(api.delete(f"/v2/agents/{AGENTS[1]}"), 204)
        eventually(lambda: not list(conn.scan_iter(KEYS.session_prefix(AGENTS[1]) + "*")), "purged", timeout=30)
        assert ok(api.get(f"/v2/webhook_endpoints/{hook['id']}/deliveries"))["deliveries"]

    migrate = subprocess.run([command(), "migrate"], capture_output=True, text=True, env=env(REDIS_URL=url), timeout=60)
    assert migrate.returncode == 0 and "nothing to move" in migrate.stdout, migrate.stdout + migrate.stderr
    conn.close()
