"""Webhook delivery: one signed POST per attempt; Dramatiq retries with backoff; dead letters last.

Logs: one WARNING line per failed attempt (event, destination, what went wrong, attempt n of m, when
the next one is), one ERROR line when the delivery becomes a dead letter. A failed attempt asks
Dramatiq for a retry with ``dramatiq.Retry`` and the delay computed here, so Dramatiq itself logs no
traceback for what is an expected outcome.
"""

from __future__ import annotations

import logging
from typing import Any

import dramatiq
from dramatiq.common import compute_backoff

from agent_sessions import webhooks
from agent_sessions.events import DEAD_LETTER, DELIVER_WEBHOOK
from agent_sessions.worker.context import Worker

log = logging.getLogger("agent_sessions.actors.webhooks")


def deliver_webhook(worker: Worker, event_id: str) -> None:
    record = worker.escalations.get(event_id)
    if record.get("status") != "pending":
        return  # delivered already (a duplicate message), dead, or unknown
    url, key = worker.settings.escalation_webhook_url, worker.settings.webhook_key
    if url is None or key is None:
        log.error("escalation %s pending but ESCALATION_WEBHOOK_URL/SECRET are not set", event_id)
        return
    try:
        webhooks.post(worker.http, url, key, event_id, record["body"].encode())
    except webhooks.DeliveryFailed as exc:
        attempts = worker.escalations.failed_attempt(event_id, str(exc))
        tries = worker.settings.webhook_max_retries + 1
        delay = None  # the last attempt: Dramatiq's Retries hands the message to the dead letters
        if attempts < tries:
            _, delay = compute_backoff(
                attempts - 1,
                factor=worker.settings.webhook_min_backoff_ms,
                max_backoff=worker.settings.webhook_max_backoff_ms,
            )
        then = "no more tries" if delay is None else f"next in {delay} ms"
        log.warning("webhook %s to %s failed: %s (attempt %d of %d; %s)", event_id, url, exc, attempts, tries, then)
        raise dramatiq.Retry(str(exc), delay=delay) from None
    worker.escalations.delivered(event_id)
    log.info("webhook %s delivered", event_id)


def dead_letter_webhook(worker: Worker, message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    event_id = message["args"][0]
    worker.escalations.dead(event_id)
    log.error(
        "webhook %s dead-lettered after %s attempts; `agent-sessions deadletters retry %s` sends it again",
        event_id,
        int(retry_info.get("retries", 0)) + 1,
        event_id,
    )


def declare(broker: dramatiq.Broker, worker: Worker) -> None:
    def deliver(event_id: str) -> None:
        deliver_webhook(worker.open(), event_id)

    def dead_letter(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
        dead_letter_webhook(worker.open(), message, retry_info)

    dramatiq.actor(actor_name=DELIVER_WEBHOOK[0], queue_name=DELIVER_WEBHOOK[1], broker=broker)(deliver)
    dramatiq.actor(actor_name=DEAD_LETTER[0], queue_name=DEAD_LETTER[1], broker=broker)(dead_letter)
