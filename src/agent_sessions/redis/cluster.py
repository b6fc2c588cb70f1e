"""The clients of a Redis Cluster: redis-py's, with the slot map read again after a failed pipeline,
and ``run`` methods that send a batch one pipeline per node, each node's share on one of its
connections (so that a WAIT follows that node's writes), without redis-py's per-command routing."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from contextlib import suppress
from typing import Any, cast

from redis.asyncio.cluster import ClusterPipeline as AsyncClusterPipeline
from redis.asyncio.cluster import PipelineCommand
from redis.asyncio.cluster import RedisCluster as AsyncCluster
from redis.cluster import RedisCluster as SyncCluster
from redis.exceptions import MaxConnectionsError, RedisClusterException

from agent_sessions.errors import StoreUnavailable
from agent_sessions.redis.acks import NO_REPLICA_ACKS, ReplicaAcks
from agent_sessions.redis.outages import OUTAGE_ERRORS, REDIRECTIONS, SLOT_MOVED


class AsyncRedisCluster(AsyncCluster):
    """The asyncio client of a Redis Cluster (see ``async_client``). After a pipeline meets a node it
    cannot reach, or a slot served elsewhere, the slot map is read again before the next pipeline:
    redis-py does that after a failed single command but not after a failed pipeline (with retries
    off, a client whose primary had failed over kept sending to the dead node)."""

    replica_acks: ReplicaAcks = NO_REPLICA_ACKS
    _stale = False

    def pipeline(self, transaction: Any | None = None, shard_hint: Any | None = None) -> AsyncClusterPipeline:
        if shard_hint:  # what redis-py's own refuses
            return super().pipeline(transaction, shard_hint)
        return _RefreshingPipeline(self, transaction)  # type: ignore[abstract]

    def topology_changed(self) -> None:
        self._stale = True

    async def refresh(self) -> None:
        """Reads the slot map again if a pipeline found it wrong (one read for concurrent callers). A
        map that cannot be read, or that leaves slots without a node (a primary failed and not yet
        replaced), is ``StoreUnavailable``: asked again before the next call."""
        if self._stale:
            self._stale = False
            try:
                await self.nodes_manager.initialize()
            except RedisClusterException as exc:
                self._stale = True
                raise StoreUnavailable(SLOT_MOVED) from exc
            except BaseException:
                self._stale = True
                raise

    async def run(
        self, commands: Sequence[tuple[Any, ...]], keys: Sequence[Any], confirmed: Sequence[bool], acks: ReplicaAcks
    ) -> list[Any]:
        """``commands`` (``commands[i]`` on the slot of ``keys[i]``), one pipeline per node on one of its
        connections, the nodes in parallel; each reply or error in its place. Where ``confirmed[i]``,
        the node's share ends with the WAIT of ``acks``, and a write its replicas did not confirm in time
        answers ``ReplicasBehind``. This is what redis-py's cluster pipeline does, less its per-command
        routing (each key's slot computed, a policy looked up: a fifth of the API's CPU per PATCH) and
        less its redirections: a command sent to a node that no longer serves its slot did not run, and
        answers ``StoreUnavailable`` (following it would send it again on another connection, where no
        WAIT follows it). A node that fails or redirects has the slot map read again before the next call."""
        await self.initialize()  # nothing once done
        await self.refresh()
        shares: dict[str, tuple[Any, list[PipelineCommand], list[bool]]] = {}
        try:
            for i, key in enumerate(keys):
                node: Any = self.get_node_from_key(key)
                share = shares.get(node.name)
                if share is None:
                    share = shares[node.name] = (node, [], [])
                share[1].append(PipelineCommand(i, *commands[i]))
                share[2].append(confirmed[i])
        except RedisClusterException as exc:  # a slot no node serves: the cluster is failing over
            self.topology_changed()
            raise StoreUnavailable(SLOT_MOVED) from exc
        waiting = bool(acks.count)
        for _, share_commands, share_confirmed in shares.values():
            if waiting and any(share_confirmed):
                share_commands.append(PipelineCommand(-1, "WAIT", acks.count, acks.timeout_ms))
        if len(shares) == 1:
            await self._send_share(*next(iter(shares.values()))[:2])
        else:
            await asyncio.gather(
                *(self._send_share(node, share_commands) for node, share_commands, _ in shares.values())
            )
        results: list[Any] = [None] * len(keys)
        for _, share_commands, share_confirmed in shares.values():
            behind = acks.shortfall(share_commands.pop().result) if share_commands[-1].position < 0 else None
            for command, confirm in zip(share_commands, share_confirmed, strict=True):
                result = command.result
                if isinstance(result, REDIRECTIONS):
                    result = StoreUnavailable(SLOT_MOVED)
                elif behind is not None and confirm and not isinstance(result, Exception):
                    result = behind
                results[command.position] = result
        return results

    async def _send_share(self, node: Any, commands: list[PipelineCommand]) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + (node.connection_kwargs.get("socket_timeout") or 1.0)
        while True:
            try:
                await node.execute_pipeline(commands)
                break
            except MaxConnectionsError as exc:
                # Every connection of the node is busy and nothing was sent: wait for one, up to the
                # timeout, as the one-node client's pool does (redis-py's cluster refuses at once).
                if loop.time() < deadline:
                    await asyncio.sleep(0.001)
                    continue
                for command in commands:
                    command.result = exc
                return
            except Exception as exc:  # the node could not be reached: every command of its share fails
                for command in commands:
                    command.result = exc
                break
        if any(isinstance(command.result, (*OUTAGE_ERRORS, *REDIRECTIONS)) for command in commands):
            self.topology_changed()


class _RefreshingPipeline(AsyncClusterPipeline):
    async def execute(self, raise_on_error: bool = True, allow_redirections: bool = True) -> list[Any]:
        client = cast(AsyncRedisCluster, self.cluster_client)
        try:
            await client.refresh()
            results = await super().execute(raise_on_error, allow_redirections)
        except (*OUTAGE_ERRORS, *REDIRECTIONS):
            client.topology_changed()
            raise
        if any(isinstance(result, (*OUTAGE_ERRORS, *REDIRECTIONS)) for result in results):
            client.topology_changed()
        return results


class SyncRedisCluster(SyncCluster):
    """The synchronous client of a Redis Cluster (see ``sync_client``). redis-py's own reads the slot
    map again when it cannot reach a node."""

    replica_acks: ReplicaAcks = NO_REPLICA_ACKS

    def run(self, commands: Sequence[tuple[Any, ...]], keys: Sequence[Any], acks: ReplicaAcks) -> list[Any]:
        """``commands`` (``commands[i]`` on the slot of ``keys[i]``), one pipeline per node, each ended
        by the WAIT of ``acks`` when asked; each reply or error in its place; ``ReplicasBehind`` raised.
        Each node's share goes through a plain client of that node (``get_redis_connection``): its own
        pipeline on one connection, so the WAIT follows the node's writes, and nothing is sent twice
        (redis-py's cluster pipeline sends again, alone, a command whose reply timed out, which could
        run a script twice). A redirected command did not run: ``StoreUnavailable``, and the map is
        read again."""
        shares: dict[str, tuple[Any, list[int]]] = {}
        for i, key in enumerate(keys):
            node = self.get_node_from_key(key)  # type: ignore[no-untyped-call]
            shares.setdefault(node.name, (node, []))[1].append(i)
        results: list[Any] = [None] * len(commands)
        try:
            for node, positions in shares.values():
                pipe = self.get_redis_connection(node).pipeline(transaction=False)
                for i in positions:
                    pipe.execute_command(*commands[i])  # type: ignore[no-untyped-call]
                waits = acks.add(pipe)
                for i, result in zip(positions, acks.check(pipe.execute(raise_on_error=False), waits), strict=True):
                    results[i] = result
        except OUTAGE_ERRORS:
            self._reread()
            raise
        results = _unredirected(results)
        if any(isinstance(result, StoreUnavailable) for result in results):
            self._reread()
        return results

    def _reread(self) -> None:
        with suppress(*OUTAGE_ERRORS, RedisClusterException):  # no whole map yet: the next call tries again
            self.nodes_manager.initialize()


def _unredirected(results: list[Any]) -> list[Any]:
    return [StoreUnavailable(SLOT_MOVED) if isinstance(result, REDIRECTIONS) else result for result in results]
