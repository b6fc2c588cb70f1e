"""Standard Webhooks (https://www.standardwebhooks.com/): signing and one delivery attempt.

Headers: ``webhook-id`` (the event id: stable across retries, so receivers dedupe on it),
``webhook-timestamp`` (seconds, per attempt) and ``webhook-signature: v1,<base64 HMAC-SHA256 of
"id.timestamp.body">`` keyed with the bytes of the ``whsec_<base64>`` secret. The standard library's
HTTP client is enough for one POST with a timeout.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
import urllib.error
import urllib.request


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


def post(url: str, key: bytes, msg_id: str, body: bytes, timeout: float) -> int:
    request = urllib.request.Request(url, data=body, headers=headers(key, msg_id, body), method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            status = int(response.status)
    except urllib.error.HTTPError as exc:
        raise DeliveryFailed(f"HTTP {exc.code} from receiver") from None
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise DeliveryFailed(f"no answer from receiver: {exc}") from None
    if not 200 <= status < 300:
        raise DeliveryFailed(f"HTTP {status} from receiver")
    return status
