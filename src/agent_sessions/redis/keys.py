"""Every Redis key the service uses, named in one place under one prefix.

Nothing else spells a key (``make lint`` checks it: ``tools/check_redis_boundary.py``). A ``Keys`` is
made from the settings by the bootstrap and passed down; nothing has a default one. The Lua scripts
receive their keys from here through KEYS, by the names their declarations give them (each feature's
``lua.py``), except where a script reads keys it can only know at run time (a page of an index, a
purge): those get the key prefix from here through ARGV instead.

Every key of one agent carries its partition's hash tag, ``{p<i>.<n>}`` (written ``{t}`` below), so
that on a Redis Cluster an agent's keys share one hash slot. The partition is a stable hash of the
agent key (CRC-32) modulo ``PARTITIONS``, which is fixed for the life of a store and recorded in it
(``layout``); the tag's ``<n>`` is the first number that puts partition ``i`` of ``P`` in the
``i``-th of ``P`` equal ranges of the 16,384 slots, so partitions spread evenly over the shards of a
cluster whose slots are split evenly. ``agent-sessions migrate`` moves a store written before the tags
(layout 1) to this layout (2): see ``migrate.py``.

| key                                            | type   | what                                        |
|------------------------------------------------|--------|---------------------------------------------|
| ``layout``                                     | hash   | layout version and PARTITIONS of this store |
| ``agents:{t}``                                 | zset   | the partition's agent keys (score 0)        |
| ``agent:{t}:<agent>``                          | hash   | the agent                                   |
| ``session:{t}:<agent>:<session>``              | hash   | the session                                 |
| ``sessions:{t}:<agent>`` and ``…:on`` / ``…:off`` | zset | the agent's sessions, all / enabled / not   |
| ``sessions:{t}:<agent>:created`` / ``…:updated`` | zset  | the same, scored by created_at / updated_at |
| ``idx:{t}:<agent>:<dimension>=<value>``        | zset   | sessions with this report dimension value   |
| ``expiry:{t}``                                 | zset   | ``<agent>/<session>`` by expires_at (ms)    |
| ``indexes:{t}``                                | hash   | which of those indexes are complete         |
| ``history:{t}:<agent>:<session>`` and ``…:bytes`` | list | the session's changes; their size in bytes  |
| ``idem:{t}:<key id>:<sha256>``                 | hash   | an Idempotency-Key's record                 |
| ``idem:index:{t}:<key id>``                    | zset   | one API key's records in one partition      |
| ``idem:snap:{t}:<agent>:<session>:<version>``  | hash   | the answer records of one version share     |
| ``purge:{t}:<agent>``, ``purges:{t}``          | zset   | sessions of deleted agents still to delete  |
| ``apikey:{<digest>}``, ``apikeys``             | hash   | API key records; key id -> digest           |
| ``rl:key:{<digest>}``, ``rl:addr:<address>``   | string | token buckets: ``<tokens> <ms>``            |
| ``outbox:{t}``, ``outbox:poison``              | stream | events for the relay; malformed entries     |
| ``lease:{t}``, ``relays``                      | string | the relay reading the outbox; live relays   |
| ``{events}``, ``…:ids``, ``…:trimmed``         | stream | the event log; event id -> entry; last cut  |
| ``report:{t}:<agent>``                         | hash   | the agent's report                          |
| ``report:state:{t}:<agent>:<session>:<ms>``, ``report:ooo:…`` | hash | a session's exactly-once state   |
| ``escalation:{t}:<event>``                     | hash   | escalation records (expire with the log)    |
| ``deadletters``                                | zset   | dead letters of the previous version        |
| ``whe:{<endpoint>}``, ``whes``                 | hash   | webhook endpoints; their ids by creation    |
| ``whes:version``                               | string | bumped by every change of an endpoint       |
| ``whd:{<endpoint>}``, ``whb:{<endpoint>}``     | hash   | deliveries: message id -> row / body        |
| ``whq:{<endpoint>}``                           | zset   | deliveries to attempt, by when (ms)         |
| ``whl:{<endpoint>}`` and ``…:<status>``        | zset   | delivery log by creation: all / per status  |
| ``wht:{<endpoint>}``                           | hash   | deliveries' attempts: message id -> JSON    |
| ``rules:{t}:<agent>``                          | string | the agent's escalation rules (JSON)         |
| ``metrics``                                    | hash   | the workers' counters                       |
| ``dev:seeded``                                 | string | ``agent-sessions dev`` seeded this store    |

What reads every partition (the agent list, the relay, the purge and expiry sweeps, reindex,
/metrics) reads each partition's key. The write scripts put each event in the agent's partition's
outbox only; the relay appends it to the event log (``{events}``). On a Redis Cluster no script
reaches beyond one slot: the gate reads an API key's record and bucket (one tag, the key's digest)
and a failed authentication is charged to the address's bucket by a script of its own; the update
script runs the gate only on one Redis (a key's slot is not its agent's); an endpoint's scripts touch
only its own keys (tagged by its id), and the endpoint list, its version and the counters are written
in steps of their own; a delivery claim reads one endpoint's queue per call.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass
from functools import cache, lru_cache

from redis.crc import REDIS_CLUSTER_HASH_SLOTS, key_slot
from typing_extensions import TypedDict

from agent_sessions.config import Settings

PREFIX = "as:"
LAYOUT = 2  # the version of this table; ``migrate.py`` moves older stores to it
DEFAULT_PARTITIONS = 64  # the PARTITIONS setting's default


def partition_of(agent: str, partitions: int) -> int:
    return zlib.crc32(agent.encode()) % partitions


@cache
def partition_tag(partition: int, partitions: int) -> str:
    """``{p<i>.<n>}``: the first ``n`` whose slot is in the ``i``-th of ``partitions`` equal slot ranges."""
    low = partition * REDIS_CLUSTER_HASH_SLOTS // partitions
    high = (partition + 1) * REDIS_CLUSTER_HASH_SLOTS // partitions
    n = 0
    while not low <= key_slot(f"p{partition}.{n}".encode()) < high:
        n += 1
    return f"{{p{partition}.{n}}}"


@lru_cache(maxsize=65_536)
def agent_tag(agent: str, partitions: int) -> str:
    """Cached: a write names its agent's keys a dozen times (a CRC-32 and a lookup each)."""
    return partition_tag(partition_of(agent, partitions), partitions)


@cache
def all_tags(partitions: int) -> tuple[str, ...]:
    """Made once per process: GET /v2/agents, the sweeps and the relays' leases read them often."""
    return tuple(partition_tag(i, partitions) for i in range(partitions))


@dataclass(frozen=True)
class Keys:
    prefix: str = PREFIX
    partitions: int = DEFAULT_PARTITIONS

    @classmethod
    def of(cls, settings: Settings) -> Keys:
        """The store's layout for a process: every process of one store must have the same PARTITIONS
        (``layout.py`` checks it against the store's record)."""
        return cls(partitions=settings.partitions)

    def tag(self, agent: str) -> str:
        """The hash tag every key of ``agent`` carries."""
        return agent_tag(agent, self.partitions)

    @property
    def layout(self) -> str:
        return f"{self.prefix}layout"

    def layout1(self, name: str) -> str:
        """A key of layout 1 by its name there (``agents``, ``outbox``…): read by ``migrate.py`` and
        the layout check only."""
        return f"{self.prefix}{name}"

    # -- agents and sessions --------------------------------------------------------------------

    def tags(self) -> tuple[str, ...]:
        """Every partition's tag, in partition order (for what reads every partition: lists, sweeps)."""
        return all_tags(self.partitions)

    def agents(self, tag: str) -> str:
        """The agent keys of one partition (``tag``)."""
        return f"{self.prefix}agents:{tag}"

    def agent(self, agent: str) -> str:
        return f"{self.prefix}agent:{self.tag(agent)}:{agent}"

    def session(self, agent: str, session: str) -> str:
        return f"{self.session_prefix(agent)}{session}"

    def session_prefix(self, agent: str) -> str:
        return f"{self.prefix}session:{self.tag(agent)}:{agent}:"

    def sessions(self, agent: str, enabled: bool | None = None) -> str:
        suffix = {None: "", True: ":on", False: ":off"}[enabled]
        return f"{self.prefix}sessions:{self.tag(agent)}:{agent}{suffix}"

    def session_indexes(self, agent: str) -> list[str]:
        return [self.sessions(agent), self.sessions(agent, True), self.sessions(agent, False)]

    def sessions_by(self, agent: str, order: str) -> str:
        """The agent's sessions scored by ``order``: "created" (created_at) or "updated" (updated_at)."""
        assert order in ("created", "updated")
        return f"{self.sessions(agent)}:{order}"

    def dimension_index(self, agent: str, dimension: str, value: str) -> str:
        return f"{self.dimension_prefix(agent)}{dimension}={value}"

    def dimension_prefix(self, agent: str) -> str:
        return f"{self.prefix}idx:{self.tag(agent)}:{agent}:"

    def expiry(self, tag: str) -> str:
        return f"{self.prefix}expiry:{tag}"

    def indexes(self, tag: str) -> str:
        return f"{self.prefix}indexes:{tag}"

    def history(self, agent: str, session: str) -> str:
        return f"{self.history_prefix(agent)}{session}"

    def history_prefix(self, agent: str) -> str:
        return f"{self.prefix}history:{self.tag(agent)}:{agent}:"

    def history_bytes(self, agent: str, session: str) -> str:
        return f"{self.history(agent, session)}:bytes"

    def purge(self, agent: str) -> str:
        return f"{self.prefix}purge:{self.tag(agent)}:{agent}"

    def purges(self, tag: str) -> str:
        return f"{self.prefix}purges:{tag}"

    # -- idempotency ----------------------------------------------------------------------------

    # An API key's records are kept per partition (with the agent's keys), so its bound is per partition.

    def idempotency(self, agent: str, key_id: str, idempotency_key_digest: str) -> str:
        return f"{self.prefix}idem:{self.tag(agent)}:{key_id}:{idempotency_key_digest}"

    def idempotency_index(self, agent: str, key_id: str) -> str:
        return f"{self.prefix}idem:index:{self.tag(agent)}:{key_id}"

    def idempotency_snapshots(self, agent: str, session: str) -> str:
        return f"{of_agent(self, agent).idempotency_snapshots_prefix}{session}:"

    def no_idempotency(self, agent: str) -> str:
        """Passed where a script declares an idempotency key but the request has none: never written."""
        return f"{self.prefix}idem:{self.tag(agent)}:-"

    # -- API keys and rate limits ---------------------------------------------------------------

    # An API key's record and its bucket share a tag (the digest): the gate reads both in one script.

    def api_key(self, key_digest: str) -> str:
        return f"{self.prefix}apikey:{{{key_digest}}}"

    @property
    def api_keys(self) -> str:
        return f"{self.prefix}apikeys"

    def key_bucket(self, key_digest: str) -> str:
        return f"{self.prefix}rl:key:{{{key_digest}}}"

    def address_bucket(self, address: str) -> str:
        return f"{self.prefix}rl:addr:{address}"

    # -- events and what the workers keep -------------------------------------------------------

    def outbox(self, tag: str) -> str:
        return f"{self.prefix}outbox:{tag}"

    def relay_lease(self, tag: str) -> str:
        """Which relay reads the partition's outbox (``leases.py``)."""
        return f"{self.prefix}lease:{tag}"

    @property
    def relays(self) -> str:
        """The live relays, scored by when each stops counting as alive."""
        return f"{self.prefix}relays"

    @property
    def outbox_poison(self) -> str:
        return f"{self.prefix}outbox:poison"

    # The event log's keys share the tag {events}: its scripts (append, page, trim) touch them together.

    @property
    def events(self) -> str:
        return f"{self.prefix}{{events}}"

    @property
    def event_ids(self) -> str:
        return f"{self.prefix}{{events}}:ids"

    @property
    def events_trimmed(self) -> str:
        return f"{self.prefix}{{events}}:trimmed"

    def report(self, agent: str) -> str:
        return f"{self.prefix}report:{self.tag(agent)}:{agent}"

    def report_state(self, agent: str, incarnation: str) -> str:
        """``incarnation``: ``<agent>:<session>:<created_at ms>`` (a session deleted and made again is another)."""
        return f"{self.prefix}report:state:{self.tag(agent)}:{incarnation}"

    def report_out_of_order(self, agent: str, incarnation: str) -> str:
        return f"{self.prefix}report:ooo:{self.tag(agent)}:{incarnation}"

    def escalation(self, agent: str, event_id: str) -> str:
        """An escalation record, in its agent's partition (its script counts it in the agent's report)."""
        return f"{self.prefix}escalation:{self.tag(agent)}:{event_id}"

    def escalations_of(self, event_id: str) -> list[str]:
        """Where an escalation record of ``event_id`` may be, for a reader that knows no agent."""
        return [f"{self.prefix}escalation:{tag}:{event_id}" for tag in self.tags()]

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}deadletters"

    # -- webhook endpoints and their deliveries -------------------------------------------------

    @property
    def webhook_endpoints(self) -> str:
        return f"{self.prefix}whes"

    @property
    def webhook_endpoints_version(self) -> str:
        """Bumped by every change of an endpoint: what the relays' cached subscriptions compare with."""
        return f"{self.prefix}whes:version"

    def webhook_endpoint(self, endpoint: str) -> str:
        return f"{self.prefix}whe:{{{endpoint}}}"

    def deliveries(self, endpoint: str) -> DeliveryKeys:
        """One endpoint's delivery keys: rows, bodies, the due queue, the log, the log per status."""
        log = f"{self.prefix}whl:{{{endpoint}}}"
        return {
            "rows": f"{self.prefix}whd:{{{endpoint}}}",
            "bodies": f"{self.prefix}whb:{{{endpoint}}}",
            "queue": f"{self.prefix}whq:{{{endpoint}}}",
            "log": log,
            "pending": f"{log}:pending",
            "delivered": f"{log}:delivered",
            "failed": f"{log}:failed",
            "dead": f"{log}:dead",
        }

    def attempts(self, endpoint: str) -> str:
        """One endpoint's attempts: message id -> the newest attempts of its delivery (JSON list)."""
        return f"{self.prefix}wht:{{{endpoint}}}"

    def escalation_rules(self, agent: str) -> str:
        return f"{self.prefix}rules:{self.tag(agent)}:{agent}"

    @property
    def counters(self) -> str:
        return f"{self.prefix}metrics"

    @property
    def dev_seeded(self) -> str:
        return f"{self.prefix}dev:seeded"


class DeliveryKeys(TypedDict):
    """One webhook endpoint's delivery keys (``Keys.deliveries``), named as the delivery scripts name
    them: its rows, bodies and due queue, its log and the log of each delivery status."""

    rows: str
    bodies: str
    queue: str
    log: str
    pending: str
    delivered: str
    failed: str
    dead: str


@dataclass(frozen=True)
class AgentKeys:
    """The keys (and key prefixes) of one agent that a session write names, made once per agent
    (``of_agent``): a PATCH names a dozen, each with the agent's tag."""

    agent: str
    session_prefix: str
    enabled: str
    disabled: str
    outbox: str
    history_prefix: str
    updated: str
    expiry: str
    dimension_prefix: str
    idempotency_snapshots_prefix: str
    no_idempotency: str


@lru_cache(maxsize=16_384)
def of_agent(keys: Keys, agent: str) -> AgentKeys:
    tag = keys.tag(agent)
    return AgentKeys(
        agent=keys.agent(agent),
        session_prefix=keys.session_prefix(agent),
        enabled=keys.sessions(agent, True),
        disabled=keys.sessions(agent, False),
        outbox=keys.outbox(tag),
        history_prefix=keys.history_prefix(agent),
        updated=keys.sessions_by(agent, "updated"),
        expiry=keys.expiry(tag),
        dimension_prefix=keys.dimension_prefix(agent),
        idempotency_snapshots_prefix=f"{keys.prefix}idem:snap:{tag}:{agent}:",
        no_idempotency=keys.no_idempotency(agent),
    )
