"""The outbox relay: moves events from the Redis outbox streams (``events.outbox``, one per partition)
into the event log and Dramatiq.

Each relay is one consumer of the streams' consumer groups. It reads new entries (up to ``batch`` of
each partition at a time), appends them to the event log (``events.store.LogWriter``; idempotent on
the event id, so the log holds each event once, each session's in version order), enqueues for each
consumer actor one message holding the batch's events (by name: the relay never imports actor code),
and only after the broker accepted them acknowledges and deletes the entries (so only acknowledged
entries are ever trimmed). Several relays may run at once: each reads the partitions it leases
(``events.leases``), and relays first what the previous holder of a partition read and never
acknowledged (it died). Delivery is therefore at least once; consumers dedupe on the event. Before
acknowledging, the relay also queues each event for the webhook endpoints subscribed to it
(``webhooks.store.Fanout``; the delivery loop sends them)."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from typing import Any

import dramatiq
import redis

from agent_sessions.errors import StoreUnavailable
from agent_sessions.events.leases import Leases
from agent_sessions.events.model import ESCALATED, EventDict, consumers, event_from_entry
from agent_sessions.events.outbox import Entry, Outbox
from agent_sessions.events.store import LogWriter
from agent_sessions.redis.outages import OUTAGE_ERRORS
from agent_sessions.webhooks.model import Message, event_message
from agent_sessions.webhooks.store import Fanout

log = logging.getLogger("agent_sessions.relay")


def commit_order(entry: Entry) -> tuple[int, int, int]:
    """An outbox entry's place in commit order: its stream id (Redis time in ms, then a sequence) and
    its partition."""
    partition, _, stream_id = entry[0].partition("/")
    ms, _, seq = stream_id.partition("-")
    return int(ms), int(seq), int(partition)


class Relay:
    def __init__(
        self,
        outbox: Outbox,
        broker: dramatiq.Broker,
        fanout: Fanout | None = None,
        name: str | None = None,
        claim_idle_ms: int = 30_000,
        batch: int = 200,
        block_ms: int = 1_000,
        linger_ms: int = 0,
        log: LogWriter | None = None,
        leases: Leases | None = None,
    ) -> None:
        """``log``: where events are appended for GET /v2/events (None: not at all, for tests about
        the queues alone). ``leases``: the partitions this relay reads are those it leases (``workers``
        share them); None: every partition (one relay, or tests)."""
        self.outbox = outbox
        self.log = log
        self.leases = leases
        self._handover: set[int] = set()  # partitions just taken over: their pending entries first
        self.broker = broker
        self.fanout = fanout
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{id(self):x}"
        self.claim_idle_ms = claim_idle_ms
        self.batch = batch
        self.block_ms = block_ms
        self.linger_ms = linger_ms
        self._next_claim = 0.0
        self._unfinished: list[Entry] = []
        # A step failed: what this relay read and did not acknowledge comes first, read back from the
        # group (a read whose reply was lost delivered entries nobody else would relay before
        # ``claim_idle_ms``, and later events of their sessions must not overtake them).
        self._recover = False

    def ensure_group(self) -> None:
        self.outbox.ensure_group()

    def step(self) -> int:
        """Relay one batch (after a failed step, what this relay read and did not acknowledge first;
        then reclaimed entries, then new ones); returns how many entries were relayed. Entries whose
        step failed (Redis gone or paused, the broker refusing, replicas not confirming) stay pending to
        this relay in the group, where nobody else would take them before ``claim_idle_ms``: they are
        read back and relayed at the next step instead, before anything newer of their partitions, so
        each session's events keep their order however a failure cuts a step (a read, the linger's
        second read, the enqueue, the acknowledgement)."""
        try:
            if self.leases is not None and self.leases.due():
                self._handover |= self.leases.refresh(keep_all=bool(self._unfinished) or self._recover)
                self._handover &= self.leases.owned
            if self._recover:
                entries = self._read_back()
            else:
                entries = self._unfinished or self._take_over() or self._reclaim() or self._read()
            self._unfinished = entries
            if entries:
                self.relay(entries)
            self._unfinished = []
            return len(entries)
        except BaseException:
            self._recover = True
            raise

    def _read_back(self) -> list[Entry]:
        """What this relay's partitions hold read and unacknowledged, oldest first, now this relay's
        (empty: recovered, back to reading new entries)."""
        entries = self.outbox.reclaim(self.name, 0, self.batch, self._owned())
        if not entries:
            self._recover = False
        elif entries != self._unfinished:
            log.info("relay %s read back %d entries after a failed step", self.name, len(entries))
        return entries

    def run(self, stop: threading.Event) -> None:
        self.ensure_group()
        log.info("relay %s started", self.name)
        while not stop.is_set():
            try:
                self.step()
            except (*OUTAGE_ERRORS, StoreUnavailable) as exc:
                # Nothing was acknowledged: the same entries are relayed again (every step is idempotent).
                log.warning("relay: redis unavailable (%s); retrying", exc)
                stop.wait(1.0)
            except redis.ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                self.ensure_group()  # the stream was deleted (e.g. FLUSHALL): start again
        if self.leases is not None and not self._unfinished and not self._recover:
            with contextlib.suppress(redis.ConnectionError, redis.TimeoutError):  # else they expire
                self.leases.release()  # stopping: the others take its partitions at once

    def _read(self) -> list[Entry]:
        entries = self._read_new(self.batch, self.block_ms)
        if entries and len(entries) < self.batch and self.linger_ms:
            # Let the batch fill: at a steady rate the relay would otherwise wake for every few events.
            time.sleep(self.linger_ms / 1000)
            entries += self._read_new(self.batch - len(entries), None)
        return entries

    def _read_new(self, count: int, block_ms: int | None) -> list[Entry]:
        return self.outbox.read_new(self.name, count, block_ms, self._owned())

    def _owned(self) -> set[int] | None:
        return None if self.leases is None else self.leases.owned

    def _take_over(self) -> list[Entry]:
        """What the previous holder of a partition just taken read and did not acknowledge: relayed
        before anything new of that partition, so each session's order holds across the handover."""
        if not self._handover:
            return []
        entries = self.outbox.reclaim(self.name, 0, self.batch, self._handover)
        if entries:
            log.info("relay %s took over %d entries of partitions %s", self.name, len(entries), sorted(self._handover))
        else:
            self._handover.clear()
        return entries

    def _reclaim(self) -> list[Entry]:
        if time.monotonic() < self._next_claim:
            return []
        self._next_claim = time.monotonic() + self.claim_idle_ms / 2000
        entries = self.outbox.reclaim(self.name, self.claim_idle_ms, self.batch, self._owned())
        if entries:
            log.info("relay %s reclaimed %d entries left by a dead relay", self.name, len(entries))
        return entries

    def relay(self, entries: list[Entry]) -> None:
        """Append the entries' events to the log, enqueue them, one message per consumer (a list of
        events), queue their webhooks, then acknowledge."""
        done: list[str] = []
        batches: dict[tuple[str, str], list[EventDict]] = {}
        relayed: list[tuple[EventDict, int]] = []  # with when it was committed (ms, Redis TIME)
        logged: list[dict[str, str]] = []
        # The batch in commit order across partitions (each partition's entries are in order already):
        # the log receives them so.
        for entry_id, fields in sorted(entries, key=commit_order):
            try:
                event = event_from_entry(fields)
            except (KeyError, ValueError) as exc:
                log.error("relay: malformed outbox entry %s set aside in the poison stream: %s", entry_id, exc)
                self.outbox.set_aside(fields)
                done.append(entry_id)
                continue
            relayed.append((event, int(fields["occurred_at"])))
            logged.append(fields)
            for consumer in consumers(event):
                batches.setdefault(consumer, []).append(event)
            done.append(entry_id)
        if self.log is not None and logged:
            self.log.append(logged)
        for (actor, queue), events in batches.items():
            message: dramatiq.Message[Any] = dramatiq.Message(
                queue_name=queue, actor_name=actor, args=(events,), kwargs={}, options={}
            )
            self.broker.enqueue(message)
        self.queue_webhooks(relayed)
        self.ack(done)

    def queue_webhooks(self, events: list[tuple[EventDict, int]]) -> None:
        """Queue each event (with when it was committed) for the webhook endpoints that wanted it then
        (before the entries are acknowledged: a relay that dies here leaves them to be relayed again,
        and queuing is idempotent). An event's message is made once, however many endpoints take it."""
        if self.fanout is None:
            return
        subscriptions = self.fanout.subscriptions()
        wanted: list[tuple[str, Message]] = []
        for event, committed in events:
            if event["type"] == ESCALATED:
                continue  # queued by the escalation actor when it recorded it, with the recorded body
            endpoints = [s.id for s in subscriptions if s.wants(event["type"], event["agent_key"], committed)]
            if endpoints:
                message = event_message(event)
                wanted += [(endpoint, message) for endpoint in endpoints]
        self.fanout.queue(wanted)

    def ack(self, entry_ids: list[str]) -> None:
        self.outbox.ack(entry_ids)
