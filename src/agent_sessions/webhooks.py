"""Standard Webhooks (https://www.standardwebhooks.com/): signing and one delivery attempt.

Headers: ``webhook-id`` (the message id: stable across retries and redeliveries, so receivers dedupe on
it), ``webhook-timestamp`` (seconds, per attempt) and ``webhook-signature``: ``v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` for each secret in use, space-separated, newest first (two during a rotation's
grace period; a verifier accepts the message when any one matches).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Sequence

import httpx

from agent_sessions.destinations import Destination

ERROR_MAX_CHARS = 500


class DeliveryFailed(Exception):
    """The receiver did not answer 2xx in time (``status_code`` None: no answer at all)."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


def sign(key: bytes, msg_id: str, timestamp: int, body: bytes) -> str:
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def headers(keys: Sequence[bytes], msg_id: str, body: bytes, now: float | None = None) -> dict[str, str]:
    timestamp = int(time.time() if now is None else now)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(sign(key, msg_id, timestamp, body) for key in keys),
        "user-agent": "agent-sessions-webhooks",
    }


async def post(
    client: httpx.AsyncClient, destination: Destination, keys: Sequence[bytes], msg_id: str, body: bytes
) -> int:
    """One attempt to the checked address; the status code, or ``DeliveryFailed`` unless 2xx."""
    sent = headers(keys, msg_id, body)
    host = f"[{destination.host}]" if ":" in destination.host else destination.host
    sent["host"] = host if destination.port in (80, 443) else f"{host}:{destination.port}"
    try:
        response = await client.post(
            destination.pinned, content=body, headers=sent, extensions={"sni_hostname": destination.host}
        )
    except httpx.HTTPError as exc:
        raise DeliveryFailed(f"no answer from receiver: {exc!r}"[:ERROR_MAX_CHARS]) from None
    if not response.is_success:
        raise DeliveryFailed(f"HTTP {response.status_code} from receiver", response.status_code)
    return response.status_code
