"""REDIS_MIN_REPLICA_ACKS on a Redis Cluster: six real nodes (three primaries, each with one replica,
``cluster-node-timeout`` 1 s so a dead primary is failed over in a few seconds).

Each write waits for a replica of the primary it went to, on the connection that carried it (a WAIT
anywhere else would return at once: WAIT counts only its own connection's writes). A replica stopped
with SIGSTOP shows it: writes to its primary are answered 503 "may have applied", writes to the other
primaries are answered as usual. Then the failover: a primary SIGKILLed right after acknowledged
writes is replaced by its replica, which has every one of them, and the same API process (and a
worker's client) goes on writing to the promoted node without a restart."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis
from redis.crc import key_slot
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.errors import ReplicasBehind, StoreUnavailable
from agent_sessions.redis.acks import ReplicaAcks
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.keys import Keys
from agent_sessions.redis.scripts import SyncScript
from agent_sessions.redis.server import RedisServer
from agent_sessions.web.app import create_app
from agent_sessions.webhooks.lua import RULES_PUT
from tests.support.api import error
from tests.support.cluster import SLOTS, cluster
from tests.support.keys import KEYS
from tests.support.wait import eventually

PRIMARIES = 3
TIMEOUT = 1.0  # REDIS_TIMEOUT: a write waits up to half of it (500 ms) for its replica
SESSIONS_PER_AGENT = 8


@pytest.fixture
def six(tmp_path: Path) -> Iterator[list[RedisServer]]:
    """Primaries first (``nodes[i]`` serves the i-th third of the slots), then their replicas (``nodes[3 + i]``)."""
    with cluster(tmp_path, primaries=PRIMARIES, replicas=PRIMARIES, node_timeout_ms=1000) as nodes:
        yield nodes


def settings_on(nodes: list[RedisServer]) -> Settings:
    return Settings(redis_url=nodes[0].url, redis_min_replica_acks=1, redis_timeout=TIMEOUT)


def agents_by_primary(keys: Keys) -> list[str]:
    """One agent whose keys live on each primary, in the primaries' order."""
    found: dict[int, str] = {}
    for n in range(1000):
        agent = f"agt_f{n}"
        found.setdefault(key_slot(keys.agent(agent).encode()) * PRIMARIES // SLOTS, agent)
        if len(found) == PRIMARIES:
            return [found[i] for i in range(PRIMARIES)]
    raise AssertionError("no agent for some primary")


def seeded(client: TestClient, nodes: list[RedisServer], agents: list[str]) -> dict[str, str]:
    secret = Keyring(sync_client(nodes[0].url), KEYS).create(Role.ADMIN, rate=1e6, burst=10**6)[1]
    headers = {"x-api-key": secret}
    for agent in agents:
        assert client.post("/v2/agents", json={"key": agent, "name": agent}, headers=headers).status_code == 201
        for n in range(SESSIONS_PER_AGENT):
            created = client.post(f"/v2/agents/{agent}/sessions", json={"key": f"ase_{n}"}, headers=headers)
            assert created.status_code == 201, created.text
    return headers


def role(node: RedisServer) -> str:
    conn = redis.Redis.from_url(node.url, decode_responses=True, socket_timeout=1)
    try:
        return str(conn.info("replication")["role"])
    except redis.ConnectionError:
        return "down"
    finally:
        conn.close()


def test_a_write_waits_for_the_replica_of_its_own_primary(six: list[RedisServer]) -> None:
    settings = settings_on(six)
    keys = Keys.of(settings)
    agents = agents_by_primary(keys)
    stalled = six[PRIMARIES + 0]  # the replica of the primary that holds agents[0]
    with TestClient(create_app(settings)) as client:
        headers = seeded(client, six, agents)
        rules = SyncScript(sync_client(six[0].url, acks=ReplicaAcks(1, 200)), RULES_PUT)
        assert stalled.process is not None
        os.kill(stalled.process.pid, signal.SIGSTOP)
        try:
            behind = client.patch(f"/v2/agents/{agents[0]}/sessions/ase_0", json={"description": "x"}, headers=headers)
            assert "may have applied" in error(behind, 503, "service_unavailable")["messages"][0]
            for agent in agents[1:]:
                other = client.patch(f"/v2/agents/{agent}/sessions/ase_0", json={"description": "x"}, headers=headers)
                assert other.status_code == 200, other.text
            # A worker's write (a script through the synchronous client) waits the same way.
            with pytest.raises(ReplicasBehind):
                rules({"agent": keys.agent(agents[0]), "rules": keys.escalation_rules(agents[0])}, {"rules": "{}"})
            assert (
                rules({"agent": keys.agent(agents[1]), "rules": keys.escalation_rules(agents[1])}, {"rules": "{}"}) == 1
            )
        finally:
            os.kill(stalled.process.pid, signal.SIGCONT)

        def confirmed() -> bool:
            again = client.patch(f"/v2/agents/{agents[0]}/sessions/ase_0", json={"description": "y"}, headers=headers)
            return again.status_code == 200

        eventually(confirmed, "writes to the first primary confirmed once its replica runs again", timeout=15)


def test_a_primary_killed_right_after_acknowledged_writes_loses_none_of_them(six: list[RedisServer]) -> None:
    settings = settings_on(six)
    keys = Keys.of(settings)
    agents = agents_by_primary(keys)
    victim, heir = six[0], six[PRIMARIES + 0]  # the primary of agents[0], and its replica
    with TestClient(create_app(settings)) as client:
        headers = seeded(client, six, agents)
        answered: dict[str, tuple[int, str]] = {}
        for agent in agents:
            for n in range(SESSIONS_PER_AGENT):
                url = f"/v2/agents/{agent}/sessions/ase_{n}"
                answer = client.patch(url, json={"description": f"kept {agent} {n}"}, headers=headers)
                assert answer.status_code == 200, answer.text
                answered[url] = (answer.json()["version"], f"kept {agent} {n}")
        victim.kill()  # right after the last answer: nothing more reaches its replica
        statuses: set[int] = set()

        def promoted() -> bool:
            # Until then: connections refused, then CLUSTERDOWN from every node: 503s, never a 500.
            for agent in agents:
                found = client.get(f"/v2/agents/{agent}/sessions/ase_0", headers=headers)
                statuses.add(found.status_code)
                if found.status_code == 503:
                    error(found, 503, "service_unavailable")
            return role(heir) == "master"

        eventually(promoted, "the replica promoted", timeout=30)
        assert statuses <= {200, 503} and 503 in statuses, statuses

        def served(url: str) -> Any:
            found = client.get(url, headers=headers)
            return found.json() if found.status_code == 200 else None  # 503 until the client sees the new map

        for url, (version, description) in answered.items():
            session = eventually(partial(served, url), f"{url} served after the failover", timeout=30)
            assert (session["version"], session["description"]) == (version, description), url
        # The same process writes to the promoted primary (its scripts loaded again there), which has no
        # replica left: applied, but not confirmed, until the old primary is back as its replica.
        url = f"/v2/agents/{agents[0]}/sessions/ase_0"
        alone = client.patch(url, json={"description": "alone"}, headers=headers)
        assert "may have applied" in error(alone, 503, "service_unavailable")["messages"][0]
        stored = served(url)
        assert stored is not None and (stored["version"], stored["description"]) == (answered[url][0] + 1, "alone")
        victim.start()
        eventually(lambda: role(victim) == "slave", "the old primary back as a replica", timeout=30)

        def confirmed() -> Any:
            after = client.patch(url, json={"description": "after"}, headers=headers)
            return after.json() if after.status_code == 200 else None

        assert eventually(confirmed, "writes confirmed again", timeout=30)["description"] == "after"
    # A worker's synchronous client, made before the failover, also finds the new primary.
    conn = sync_client(six[1].url, acks=ReplicaAcks(0, 0))
    rules = SyncScript(conn, RULES_PUT)
    assert eventually(
        lambda: rules({"agent": keys.agent(agents[0]), "rules": keys.escalation_rules(agents[0])}, {"rules": "{}"}) == 1
    )


def test_a_cluster_that_is_down_answers_503_and_is_served_again_once_whole(tmp_path: Path) -> None:
    """CLUSTERDOWN (a slot no node serves: what every node answers between a primary's failure and its
    replacement) is an outage like a refused connection: 503 with Retry-After, never a 500; the same
    process serves again once the cluster is whole, a worker's script too."""
    with cluster(tmp_path, primaries=PRIMARIES) as nodes:
        settings = Settings(redis_url=nodes[0].url, redis_timeout=TIMEOUT)
        keys = Keys.of(settings)
        agents = agents_by_primary(keys)
        with TestClient(create_app(settings)) as client:
            headers = seeded(client, nodes, agents[:1])
            url = f"/v2/agents/{agents[0]}/sessions/ase_0"
            rules = SyncScript(sync_client(nodes[0].url), RULES_PUT)  # a worker's, made while it is whole
            conns = [redis.Redis.from_url(node.url, decode_responses=True) for node in nodes]
            last = SLOTS - 1  # the last primary's, and no key here: only the cluster's state changes
            for conn in conns:
                conn.execute_command("CLUSTER", "DELSLOTS", last)  # type: ignore[no-untyped-call]
            eventually(lambda: all(conn.cluster("info")["cluster_state"] == "fail" for conn in conns), timeout=30)
            down = client.patch(url, json={"description": "down"}, headers=headers)
            assert down.headers["retry-after"] == "1" and error(down, 503, "service_unavailable")
            error(client.get(url, headers=headers), 503, "service_unavailable")
            with pytest.raises(StoreUnavailable):
                rules({"agent": keys.agent(agents[0]), "rules": keys.escalation_rules(agents[0])}, {"rules": "{}"})
            conns[-1].execute_command("CLUSTER", "ADDSLOTS", last)  # type: ignore[no-untyped-call]
            for conn in conns[:-1]:
                conn.execute_command("CLUSTER", "SETSLOT", last, "NODE", conns[-1].execute_command("CLUSTER", "MYID"))  # type: ignore[no-untyped-call]

            def served() -> bool:
                return client.patch(url, json={"description": "up"}, headers=headers).status_code == 200

            eventually(served, "served again once every slot has a node", timeout=30)
            assert (
                rules({"agent": keys.agent(agents[0]), "rules": keys.escalation_rules(agents[0])}, {"rules": "{}"}) == 1
            )
            for conn in conns:
                conn.close()
