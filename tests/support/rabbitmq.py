"""The machine's RabbitMQ (127.0.0.1:5672, guest/guest), which the broker tests use when it runs."""

from __future__ import annotations

import socket

RABBITMQ_URL = "amqp://guest:guest@127.0.0.1:5672/%2F"


def rabbitmq_available() -> bool:
    try:
        socket.create_connection(("127.0.0.1", 5672), timeout=1).close()
        return True
    except OSError:
        return False


def purge_rabbitmq() -> None:
    """The local RabbitMQ outlives test runs: leave no old messages in our queues."""
    from dramatiq.brokers.rabbitmq import RabbitmqBroker

    broker = RabbitmqBroker(url=RABBITMQ_URL)
    for queue in ("reports", "escalations", "webhooks"):
        broker.declare_queue(queue)
    broker.flush_all()
    broker.close()
