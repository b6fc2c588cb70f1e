"""Every Redis key the service uses, named in one place under one prefix.

Nothing outside ``agent_sessions.redis`` spells a key (``make check`` greps for it). The Lua scripts
receive their keys from here through KEYS, except where a script reads keys it can only know at run
time (a page of an index, a purge): those get the key prefix from here through ARGV instead.

| key                                            | type   | what                                        |
|------------------------------------------------|--------|---------------------------------------------|
| ``agents``                                     | zset   | every agent key (score 0, by member)        |
| ``agent:<agent>``                              | hash   | the agent                                   |
| ``session:<agent>:<session>``                  | hash   | the session                                 |
| ``sessions:<agent>`` and ``…:on`` / ``…:off``  | zset   | the agent's sessions, all / enabled / not   |
| ``sessions:<agent>:created`` / ``…:updated``   | zset   | the same, scored by created_at / updated_at |
| ``idx:<agent>:<dimension>=<value>``            | zset   | sessions with this report dimension value   |
| ``expiry``                                     | zset   | ``<agent>/<session>`` by expires_at (ms)    |
| ``indexes``                                    | hash   | which of those indexes are complete         |
| ``history:<agent>:<session>`` and ``…:bytes``  | list   | the session's changes; their size in bytes  |
| ``idem:<key id>:<sha256>``                     | hash   | an Idempotency-Key's record                 |
| ``idem:index:<key id>``                        | zset   | one API key's records, oldest first         |
| ``idem:snap:<agent>:<session>:<version>``      | hash   | the answer records of one version share     |
| ``purge:<agent>``, ``purges``                  | zset   | sessions of deleted agents still to delete  |
| ``apikey:<digest>``, ``apikeys``               | hash   | API key records; key id -> digest           |
| ``rl:key:<digest>``, ``rl:addr:<address>``     | hash   | token buckets                               |
| ``outbox``, ``outbox:poison``                  | stream | events for the relay; malformed entries     |
| ``events``, ``events:ids``, ``events:trimmed`` | stream | the event log; event id -> entry; last cut  |
| ``report:<agent>``, ``report:state:…``, ``…ooo…`` | hash | reports and their exactly-once state        |
| ``escalation:<event>``                         | hash   | escalation records (expire with the log)    |
| ``escalations:<agent>``                        | zset   | earlier versions' list, deleted when seen   |
| ``deadletters``                                | zset   | dead letters of the previous version        |
| ``whe:<endpoint>``, ``whes``                   | hash   | webhook endpoints; their ids by creation    |
| ``whd:<endpoint>``, ``whb:<endpoint>``         | hash   | deliveries: message id -> row / body        |
| ``whq:<endpoint>``                             | zset   | deliveries to attempt, by when (ms)         |
| ``whl:<endpoint>`` and ``…:<status>``          | zset   | delivery log by creation: all / per status  |
| ``rules:<agent>``                              | string | the agent's escalation rules (JSON)         |
| ``metrics``                                    | hash   | the workers' counters                       |
| ``dev:seeded``                                 | string | ``agent-sessions dev`` seeded this store    |

Not Redis Cluster ready: the ``whe*`` keys of one endpoint share no hash tag, and a delivery claim
reads every endpoint's queue in one script; partitioning them is the cluster work's.
"""

from __future__ import annotations

from dataclasses import dataclass

from agent_sessions.endpoints import DELIVERY_STATUSES

PREFIX = "as:"


@dataclass(frozen=True)
class Keys:
    prefix: str = PREFIX

    # -- agents and sessions --------------------------------------------------------------------

    @property
    def agents(self) -> str:
        return f"{self.prefix}agents"

    def agent(self, agent: str) -> str:
        return f"{self.prefix}agent:{agent}"

    @property
    def agent_prefix(self) -> str:
        return self.agent("")

    def session(self, agent: str, session: str) -> str:
        return f"{self.session_prefix(agent)}{session}"

    def session_prefix(self, agent: str) -> str:
        return f"{self.prefix}session:{agent}:"

    def sessions(self, agent: str, enabled: bool | None = None) -> str:
        suffix = {None: "", True: ":on", False: ":off"}[enabled]
        return f"{self.prefix}sessions:{agent}{suffix}"

    def session_indexes(self, agent: str) -> list[str]:
        return [self.sessions(agent), self.sessions(agent, True), self.sessions(agent, False)]

    def sessions_by(self, agent: str, order: str) -> str:
        """The agent's sessions scored by ``order``: "created" (created_at) or "updated" (updated_at)."""
        assert order in ("created", "updated")
        return f"{self.prefix}sessions:{agent}:{order}"

    def dimension_index(self, agent: str, dimension: str, value: str) -> str:
        return f"{self.dimension_prefix(agent)}{dimension}={value}"

    def dimension_prefix(self, agent: str) -> str:
        return f"{self.prefix}idx:{agent}:"

    @property
    def expiry(self) -> str:
        return f"{self.prefix}expiry"

    @property
    def indexes(self) -> str:
        return f"{self.prefix}indexes"

    def history(self, agent: str, session: str) -> str:
        return f"{self.history_prefix(agent)}{session}"

    def history_prefix(self, agent: str) -> str:
        return f"{self.prefix}history:{agent}:"

    def history_bytes(self, agent: str, session: str) -> str:
        return f"{self.history(agent, session)}:bytes"

    def purge(self, agent: str) -> str:
        return f"{self.prefix}purge:{agent}"

    @property
    def purges(self) -> str:
        return f"{self.prefix}purges"

    # -- idempotency ----------------------------------------------------------------------------

    def idempotency(self, key_id: str, idempotency_key_digest: str) -> str:
        return f"{self.prefix}idem:{key_id}:{idempotency_key_digest}"

    def idempotency_index(self, key_id: str) -> str:
        return f"{self.prefix}idem:index:{key_id}"

    def idempotency_snapshots(self, agent: str, session: str) -> str:
        return f"{self.prefix}idem:snap:{agent}:{session}:"

    @property
    def no_idempotency(self) -> str:
        """Passed where a script declares an idempotency key but the request has none: never written."""
        return f"{self.prefix}idem:-"

    # -- API keys and rate limits ---------------------------------------------------------------

    def api_key(self, key_digest: str) -> str:
        return f"{self.prefix}apikey:{key_digest}"

    @property
    def api_keys(self) -> str:
        return f"{self.prefix}apikeys"

    def key_bucket(self, key_digest: str) -> str:
        return f"{self.prefix}rl:key:{key_digest}"

    def address_bucket(self, address: str) -> str:
        return f"{self.prefix}rl:addr:{address}"

    # -- events and what the workers keep -------------------------------------------------------

    @property
    def outbox(self) -> str:
        return f"{self.prefix}outbox"

    @property
    def outbox_poison(self) -> str:
        return f"{self.prefix}outbox:poison"

    @property
    def events(self) -> str:
        return f"{self.prefix}events"

    @property
    def event_ids(self) -> str:
        return f"{self.prefix}events:ids"

    @property
    def events_trimmed(self) -> str:
        return f"{self.prefix}events:trimmed"

    def event_streams(self) -> list[str]:
        """What every script that emits an event writes besides the session: outbox, log, log index."""
        return [self.outbox, self.events, self.event_ids]

    def report(self, agent: str) -> str:
        return f"{self.prefix}report:{agent}"

    def report_state(self, incarnation: str) -> str:
        return f"{self.prefix}report:state:{incarnation}"

    def report_out_of_order(self, incarnation: str) -> str:
        return f"{self.prefix}report:ooo:{incarnation}"

    def escalation(self, event_id: str) -> str:
        return f"{self.prefix}escalation:{event_id}"

    def escalations(self, agent: str) -> str:
        return f"{self.prefix}escalations:{agent}"

    @property
    def dead_letters(self) -> str:
        return f"{self.prefix}deadletters"

    # -- webhook endpoints and their deliveries -------------------------------------------------

    @property
    def webhook_endpoints(self) -> str:
        return f"{self.prefix}whes"

    def webhook_endpoint(self, endpoint: str) -> str:
        return f"{self.prefix}whe:{endpoint}"

    def deliveries(self, endpoint: str) -> list[str]:
        """One endpoint's delivery keys: rows, bodies, the due queue, the log, the log per status."""
        log = f"{self.prefix}whl:{endpoint}"
        statuses = [f"{log}:{status}" for status in DELIVERY_STATUSES]
        return [
            f"{self.prefix}whd:{endpoint}",
            f"{self.prefix}whb:{endpoint}",
            f"{self.prefix}whq:{endpoint}",
            log,
            *statuses,
        ]

    def escalation_rules(self, agent: str) -> str:
        return f"{self.prefix}rules:{agent}"

    @property
    def counters(self) -> str:
        return f"{self.prefix}metrics"

    @property
    def dev_seeded(self) -> str:
        return f"{self.prefix}dev:seeded"


KEYS = Keys()
