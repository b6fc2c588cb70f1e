"""Webhook delivery: one signed POST per attempt; Dramatiq retries with backoff; dead letters last."""

from __future__ import annotations

import logging
from typing import Any

import dramatiq

from agent_sessions import webhooks
from agent_sessions.broker import resources
from agent_sessions.events import DEAD_LETTER, DELIVER_WEBHOOK

log = logging.getLogger("agent_sessions.actors.webhooks")


@dramatiq.actor(actor_name=DELIVER_WEBHOOK[0], queue_name=DELIVER_WEBHOOK[1])
def deliver_webhook(event_id: str) -> None:
    res = resources()
    record = res.escalations.get(event_id)
    if record.get("status") != "pending":
        return  # delivered already (a duplicate message), dead, or unknown
    url, key = res.settings.escalation_webhook_url, res.settings.webhook_key
    if url is None or key is None:
        log.error("escalation %s pending but ESCALATION_WEBHOOK_URL/SECRET are not set", event_id)
        return
    try:
        webhooks.post(res.http, url, key, event_id, record["body"].encode())
    except webhooks.DeliveryFailed as exc:
        res.escalations.failed_attempt(event_id, str(exc))
        log.warning("webhook %s not delivered: %s", event_id, exc)
        raise
    res.escalations.delivered(event_id)
    log.info("webhook %s delivered", event_id)


@dramatiq.actor(actor_name=DEAD_LETTER[0], queue_name=DEAD_LETTER[1])
def dead_letter_webhook(message: dict[str, Any], retry_info: dict[str, Any]) -> None:
    event_id = message["args"][0]
    resources().escalations.dead(event_id)
    log.error("webhook %s dead-lettered after %s retries", event_id, retry_info.get("retries"))
