"""The previous version's delivery messages: ``deliver_webhook(event_id)`` was one Dramatiq message per
escalation. Webhooks are now sent by the delivery loop (``webhooks.delivery``); a message of that kind
still in the broker after an upgrade queues its escalation for ``ESCALATION_WEBHOOK_URL`` there, so
none is lost in the switch."""

from __future__ import annotations

import logging

import dramatiq

from agent_sessions.events.model import DELIVER_WEBHOOK
from agent_sessions.webhooks.model import SETTINGS_ENDPOINT, escalation_message
from agent_sessions.worker.context import ActorGraph, Worker

log = logging.getLogger("agent_sessions.actors.webhooks")


def deliver_webhook(worker: ActorGraph, event_id: str, to_settings_url: bool) -> None:
    body = worker.escalations.get(event_id).get("body")
    if body is None or not to_settings_url:
        log.error("escalation %s: nothing to send (no record, or no ESCALATION_WEBHOOK_URL)", event_id)
        return
    worker.fanout.queue([(SETTINGS_ENDPOINT, escalation_message(event_id, body.encode()))])


def declare(broker: dramatiq.Broker, worker: Worker) -> None:
    def deliver(event_id: str) -> None:
        deliver_webhook(worker.open(), event_id, worker.settings.escalation_webhook_url is not None)

    dramatiq.actor(actor_name=DELIVER_WEBHOOK[0], queue_name=DELIVER_WEBHOOK[1], broker=broker)(deliver)
