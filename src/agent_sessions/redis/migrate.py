"""``agent-sessions migrate``: move a store written by an earlier key layout into the current one, in
place. Run it with every process of the earlier version stopped, before starting the new one (which
refuses an unmigrated store: ``layout.py``).

Layout 1 -> 2 (every key of an agent gains its partition's hash tag, ``keys.py``):
- what every agent shared is split by partition, in chunks: the agent list, the expiry index, the
  purges in progress, the outbox (each event keeps its stream id, so its order); the index readiness
  marks are copied to every partition, and the event log is renamed under its tag ``{events}``;
- each key of an agent is renamed (``RENAME``: same value, same time to live), found by one ``SCAN``
  of the prefix: the agent, its sessions and their indexes, histories, report and its per-session
  state, escalation rules, the purge list of a deleted agent, and the answers kept for Idempotency-Keys;
- an Idempotency-Key record moves to its agent's partition (the agent is the one of the answer it
  keeps) and into that partition's index of the API key's records, with its time; a record that keeps
  no answer (the first request failed: 404, 409…) names no agent and is deleted: a retry of that
  request is applied anew;
- an escalation record moves to its agent's partition (the agent it names); the per-agent escalation
  lists earlier versions wrote and never read are deleted;
- an API key's record and its rate-limit bucket are renamed under a tag of their own (the digest),
  and each webhook endpoint's keys under its id;
- the record says layout 1 (with the PARTITIONS being moved to) from the start and layout 2 only at
  the end: until then every process of this version refuses the store, and a run that finishes an
  interrupted one must use the same PARTITIONS.

Idempotent: a key is moved once (a second run, or a run after an interrupted one, finds only what is
left); a store already in the current layout is left alone. What does not belong to one agent (API keys,
the outbox, the event log, webhook endpoints, deliveries, escalation records) keeps its name.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Callable
from typing import cast

import redis

from agent_sessions.errors import ConfigError
from agent_sessions.redis.keys import LAYOUT, Keys

AGENT = r"(agt_[0-9A-Za-z_-]+)"
SCAN_COUNT = 1000


def _renames(keys: Keys) -> list[tuple[str, re.Pattern[str], Callable[[re.Match[str]], str]]]:
    """(kind, layout-1 name, its layout-2 name) for each key of an agent."""
    p = re.escape(keys.prefix)
    return [
        ("agents", re.compile(rf"{p}agent:{AGENT}"), lambda m: keys.agent(m[1])),
        ("sessions", re.compile(rf"{p}session:{AGENT}:(.+)"), lambda m: keys.session(m[1], m[2])),
        ("session lists", re.compile(rf"{p}sessions:{AGENT}(|:.+)"), lambda m: keys.sessions(m[1]) + m[2]),
        ("metadata indexes", re.compile(rf"{p}idx:{AGENT}:(.+)"), lambda m: keys.dimension_prefix(m[1]) + m[2]),
        ("histories", re.compile(rf"{p}history:{AGENT}:(.+)"), lambda m: keys.history_prefix(m[1]) + m[2]),
        ("purge lists", re.compile(rf"{p}purge:{AGENT}"), lambda m: keys.purge(m[1])),
        ("reports", re.compile(rf"{p}report:{AGENT}"), lambda m: keys.report(m[1])),
        (
            "report states",
            re.compile(rf"{p}report:state:({AGENT[1:-1]}:.+)"),
            lambda m: keys.report_state(m[1].split(":", 1)[0], m[1]),
        ),
        (
            "report states",
            re.compile(rf"{p}report:ooo:({AGENT[1:-1]}:.+)"),
            lambda m: keys.report_out_of_order(m[1].split(":", 1)[0], m[1]),
        ),
        ("escalation rules", re.compile(rf"{p}rules:{AGENT}"), lambda m: keys.escalation_rules(m[1])),
        (
            "idempotency answers",
            re.compile(rf"{p}idem:snap:{AGENT}:([^:]+):(\d+)"),
            lambda m: keys.idempotency_snapshots(m[1], m[2]) + m[3],
        ),
    ]


class Migration:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys
        self.done: Counter[str] = Counter()
        p = re.escape(keys.prefix)
        self._record = re.compile(rf"{p}idem:(kid_[^:{{]+):([0-9a-f]{{64}})")
        self._old_index = re.compile(rf"{p}idem:index:(kid_[^:{{]+)")
        self._snapshot = re.compile(rf"{p}idem:snap:{AGENT}:([^:]+):(\d+)")
        self._legacy_escalations = re.compile(rf"{p}escalations:{AGENT}")
        self._escalation = re.compile(rf"{p}escalation:(evt_[^:{{]+)")
        self._api_key = re.compile(rf"{p}(apikey|rl:key):([0-9a-f]{{64}})")
        self._webhook = re.compile(rf"{p}(whe|whd|whb|whq|whl):(whe_[0-9A-Za-z_]+)(:[a-z]+)?")

    def run(self) -> Counter[str]:
        """Move what is left to move and record the layout; returns what was done, by kind."""
        # Marked first as layout 1 with its PARTITIONS: until the end, every process refuses the store,
        # and a run to finish this one must use the same PARTITIONS.
        self.redis.hsetnx(self.keys.layout, "version", 1)
        self.redis.hsetnx(self.keys.layout, "partitions", self.keys.partitions)
        record = cast(dict[str, str], self.redis.hgetall(self.keys.layout))
        version, partitions = int(record["version"]), int(record["partitions"])
        if partitions != self.keys.partitions or version not in (1, LAYOUT):
            raise ConfigError(
                f"this store has key layout {version} with PARTITIONS={partitions}; this version moves layout 1"
                f" to layout {LAYOUT} and was started with PARTITIONS={self.keys.partitions}"
            )
        if version == LAYOUT:
            return self.done
        self._split_shared()
        renames = _renames(self.keys)
        old_indexes = []
        for key in cast(list[str], self.redis.scan_iter(match=f"{self.keys.prefix}*", count=SCAN_COUNT)):
            if self._old_index.fullmatch(key):
                old_indexes.append(key)
            elif match := self._record.fullmatch(key):
                self._move_record(key, match[1], match[2])
            elif self._legacy_escalations.fullmatch(key):
                self.done["old escalation lists deleted"] += self.redis.delete(key)
            elif match := self._api_key.fullmatch(key):
                new = self.keys.api_key(match[2]) if match[1] == "apikey" else self.keys.key_bucket(match[2])
                self._rename("API keys and their buckets", key, new)
            elif match := self._webhook.fullmatch(key):
                self._rename(
                    "webhook endpoint keys", key, f"{self.keys.prefix}{match[1]}:{{{match[2]}}}{match[3] or ''}"
                )
            elif match := self._escalation.fullmatch(key):
                agent = cast(str | None, self.redis.hget(key, "agent_key"))
                if agent is not None:  # else expired meanwhile
                    self._rename("escalation records", key, self.keys.escalation(agent, match[1]))
            else:
                for kind, pattern, new_name in renames:
                    if match := pattern.fullmatch(key):
                        self._rename(kind, key, new_name(match))
                        break
        for key in old_indexes:  # what is left in them names records gone (expired or just moved)
            self.redis.delete(key)
        self.redis.hset(self.keys.layout, "version", LAYOUT)
        return self.done

    def _split_shared(self) -> None:
        """Layout 1's keys shared by every agent, each split into its partitions' (or, for the event log,
        renamed under its tag). Each chunk is written to the new keys before it leaves the old, so a
        run stopped anywhere is finished by the next."""
        k = self.keys
        self._split_zset("agent lists", k.layout1("agents"), lambda agent: k.agents(k.tag(agent)))
        self._split_zset("expiry entries", k.layout1("expiry"), lambda member: k.expiry(k.tag(member.split("/")[0])))
        old = k.layout1("purges")
        while purges := cast(dict[str, str], self.redis.hgetall(old)):  # a few agents being purged
            for agent, value in purges.items():
                self.redis.hset(k.purges(k.tag(agent)), agent, value)
                self.redis.hdel(old, agent)
                self.done["agent purges"] += 1
        old = k.layout1("indexes")
        if ready := cast(dict[str, str], self.redis.hgetall(old)):  # which indexes are complete: every partition
            for tag in k.tags():
                self.redis.hset(k.indexes(tag), mapping=ready)  # type: ignore[arg-type]
            self.redis.delete(old)
        for name, new in (("events", k.events), ("events:ids", k.event_ids), ("events:trimmed", k.events_trimmed)):
            self._rename("event log keys", k.layout1(name), new)
        self._split_outbox()
        self.redis.hdel(k.counters, "webhooks:dead")  # the dead letters are counted from each endpoint now

    def _split_zset(self, kind: str, old: str, new_key: Callable[[str], str]) -> None:
        while chunk := cast(list[tuple[str, float]], self.redis.zrange(old, 0, SCAN_COUNT - 1, withscores=True)):
            pipe = self.redis.pipeline(transaction=False)
            for member, score in chunk:
                pipe.zadd(new_key(member), {member: score})
            pipe.zrem(old, *(member for member, _ in chunk))
            pipe.execute()
            self.done[kind] += len(chunk)

    def _split_outbox(self) -> None:
        """Events not yet relayed, each to its agent's partition's outbox with its id (so in the same
        order). Those a relay had read and not acknowledged are relayed again: consumers are idempotent."""
        old = self.keys.layout1("outbox")
        while chunk := cast(list[tuple[str, dict[str, str]]], self.redis.xrange(old, count=SCAN_COUNT)):
            for entry_id, fields in chunk:
                agent = fields.get("agent_key")
                stream = self.keys.outbox(self.keys.tag(agent)) if agent else self.keys.outbox_poison
                try:
                    self.redis.xadd(stream, fields, id=entry_id if agent else "*")  # type: ignore[arg-type]
                    self.done["outbox entries"] += 1
                except redis.ResponseError as exc:
                    if "equal or smaller" not in str(exc):
                        raise  # else moved by a run that stopped before deleting it here
            self.redis.xdel(old, *(entry_id for entry_id, _ in chunk))
        self.redis.delete(old)  # the consumer group: relays make one on each partition's stream

    def _rename(self, kind: str, key: str, new: str) -> None:
        try:
            self.redis.rename(key, new)
        except redis.ResponseError as exc:
            if "no such key" not in str(exc).lower():
                raise
            return  # expired, or listed twice by SCAN and moved already
        self.done[kind] += 1

    def _move_record(self, key: str, key_id: str, digest: str) -> None:
        old_index = f"{self.keys.prefix}idem:index:{key_id}"
        pipe = self.redis.pipeline(transaction=False)
        pipe.hget(key, "snap")
        pipe.pttl(key)
        pipe.zscore(old_index, key)
        pipe.pttl(old_index)
        snapshot, ttl_ms, written, index_ttl_ms = pipe.execute()
        match = self._snapshot.fullmatch(snapshot or "")
        if match is None:
            self.redis.delete(key)
            self.redis.zrem(old_index, key)
            self.done["idempotency records without an answer deleted"] += 1
            return
        agent, session, version = match[1], match[2], match[3]
        new, new_index = self.keys.idempotency(agent, key_id, digest), self.keys.idempotency_index(agent, key_id)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hset(key, "snap", self.keys.idempotency_snapshots(agent, session) + version)
        pipe.rename(key, new)
        # RENAME keeps the record's time to live; should it have expired since it was read, the HSET
        # above made a stub, which goes when the record would have.
        pipe.pexpire(new, max(1, ttl_ms))
        pipe.zadd(new_index, {new: written or time.time() * 1000})
        pipe.pexpire(new_index, max(1, index_ttl_ms, ttl_ms))  # an index lives as long as its records
        pipe.zrem(old_index, key)
        pipe.execute()
        self.done["idempotency records"] += 1
