"""Dramatiq's StubBroker with our actors declared on it, for in-process actor and relay tests.

Built as ``bootstrap.dramatiq_workers`` builds the real one (the same middleware and actors), once per
test process; tests point its ``worker`` at their own Redis (``worker.settings``) before starting it.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.worker import actors
from agent_sessions.worker.broker import OrjsonEncoder
from agent_sessions.worker.context import Worker
from agent_sessions.worker.middleware import Accounting, Lifecycle

dramatiq.set_encoder(OrjsonEncoder())  # as make_broker() does
worker = Worker(Settings(redis_url="redis://127.0.0.1:1/0"), bootstrap.actor_graph)  # set per test
stub_broker = StubBroker()
stub_broker.add_middleware(Lifecycle(worker))
stub_broker.add_middleware(Accounting(worker))
dramatiq.set_broker(stub_broker)
actors.declare(stub_broker, worker)

__all__ = ["stub_broker", "worker"]
