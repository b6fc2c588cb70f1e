"""The worker side of the pipeline in this process: a relay (with the webhook fan-out), Dramatiq's
StubBroker with our actors on an in-process worker, and the webhook delivery loop in a thread. The
end-to-end tests run the real processes; these are for tests about what happens, quickly."""

from __future__ import annotations

import threading
from types import TracebackType

import dramatiq

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.events.model import ESCALATE, REPORT
from agent_sessions.events.outbox import Outbox
from agent_sessions.events.relay import Relay
from agent_sessions.events.store import LogWriter
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.keys import Keys
from agent_sessions.webhooks.store import Bounds, Fanout
from tests.support.stub import stub_broker
from tests.support.stub import worker as worker_context


class InProcess:
    def __init__(self, settings: Settings, deliveries: bool = True) -> None:
        self.client = sync_client(settings.required_redis_url("tests"))
        fanout = Fanout(self.client, Keys.of(settings), Bounds.of(settings))
        self.relay = Relay(
            Outbox(self.client, Keys.of(settings)),
            stub_broker,
            fanout,
            name="relay-t",
            claim_idle_ms=100,
            block_ms=10,
            log=LogWriter(self.client, Keys.of(settings)),
        )
        self.relay.ensure_group()
        worker_context.close()
        worker_context.settings = settings
        stub_broker.flush_all()
        self.worker = dramatiq.Worker(stub_broker, worker_timeout=20, worker_threads=4)
        self.worker.start()
        self.stop = threading.Event()
        self.loop: threading.Thread | None = None
        self.relaying: threading.Thread | None = None
        if deliveries:
            self.loop = threading.Thread(target=bootstrap.deliveries(settings).run, args=(self.stop,), daemon=True)
            self.loop.start()

    def start_relay(self) -> None:
        """Relay in a thread from now on, as a worker does (then ``drain`` is not for this pipeline)."""
        self.relaying = threading.Thread(target=self.relay.run, args=(self.stop,), daemon=True)
        self.relaying.start()

    def drain(self) -> None:
        """Relay every event and let the actors handle them (deliveries go on in the loop)."""
        while self.relay.step():
            pass
        for queue in (REPORT[1], ESCALATE[1]):
            stub_broker.join(queue, fail_fast=False)

    def close(self) -> None:
        self.stop.set()
        for thread in (self.loop, self.relaying):
            if thread is not None:
                thread.join(15)  # before the client it uses is closed
        self.worker.stop()
        stub_broker.flush_all()
        worker_context.close()
        self.client.close()

    def __enter__(self) -> InProcess:
        return self

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.close()
