"""Standard Webhooks (https://www.standardwebhooks.com/): signing and one delivery attempt.

Headers: ``webhook-id`` (the event id: stable across retries, so receivers dedupe on it),
``webhook-timestamp`` (seconds, per attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` keyed with the bytes of the ``whsec_<base64>`` secret. Deliveries go through
the worker's keep-alive ``httpx.Client`` (a new connection per webhook costs more than the webhook).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time

import httpx


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx in time; Dramatiq retries the delivery."""


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(key: bytes, msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(key, msg_id, timestamp, body),
        "user-agent": "agent-sessions-webhooks",
    }


def post(client: httpx.Client, url: str, key: bytes, msg_id: str, body: bytes) -> int:
    """One attempt; raises ``DeliveryFailed`` unless the receiver answers 2xx within the timeout."""
    try:
        response = client.post(url, content=body, headers=headers(key, msg_id, body))
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"no answer from receiver: {exc!r}") from None
    if not response.is_success:
        raise DeliveryFailed(f"HTTP {response.status_code} from receiver")
    return response.status_code
