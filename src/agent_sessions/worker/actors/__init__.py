"""The Dramatiq actors. ``declare(broker, worker)`` binds them to ``broker``; each receives ``worker``
(``worker.context.Worker``), the dependencies its process opened, explicitly.

Each module has the handler (a plain function of the worker and the message's arguments, which tests
may call directly) and its ``declare``. The relay enqueues by actor name and queue (``events``), so
neither the API nor the relay imports this package.
"""

from __future__ import annotations

import dramatiq

from agent_sessions.worker.actors import escalation, reporting, webhooks
from agent_sessions.worker.context import Worker


def declare(broker: dramatiq.Broker, worker: Worker) -> None:
    for module in (reporting, escalation, webhooks):
        module.declare(broker, worker)
