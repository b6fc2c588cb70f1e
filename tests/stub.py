"""Dramatiq's StubBroker with our actors bound to it, for in-process actor and relay tests.

Actors bind to the global broker when first imported, so this module sets the stub broker first and
imports the actors second; every test process that imports it shares this one broker.
"""

from __future__ import annotations

import dramatiq
from dramatiq.brokers.stub import StubBroker

from agent_sessions.broker import OrjsonEncoder, WorkerResources
from agent_sessions.config import Settings

dramatiq.set_encoder(OrjsonEncoder())  # as make_broker() does
stub_broker = StubBroker()
stub_broker.add_middleware(WorkerResources(Settings(redis_url="redis://127.0.0.1:1/0")))  # set per test
dramatiq.set_broker(stub_broker)

from agent_sessions import actors  # noqa: E402  (after the broker, on purpose)

__all__ = ["actors", "stub_broker", "worker_resources"]


def worker_resources() -> WorkerResources:
    return next(m for m in stub_broker.middleware if isinstance(m, WorkerResources))
