"""The seed's example data and the error-body check every API test uses."""

from __future__ import annotations

import base64
import os
from collections.abc import Callable
from typing import Any

from pydantic import TypeAdapter

from agent_sessions.sessions.models import ErrorBody

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")  # a missing service fails, never skips
MakeKey = Callable[..., str]  # the make_key fixture: make_key(role="admin", agents=(), **Keyring.create kwargs)

SEED_AGENT = "agt_customer_support"
SEED_SESSION = "ase_customer_support_001"
URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
SESSIONS = f"/v2/agents/{SEED_AGENT}/sessions"

# The seed's example request and response (the response shown there has these fields).
SEED_REQUEST = {
    "description": "Escalated billing inquiry requiring management review and account adjustment",
    "metadata": {
        "customer_id": "customer_12345",
        "priority": "urgent",
        "channel": "web_chat",
        "issue_category": "billing",
        "resolution_status": "escalated",
        "escalation_level": "tier_2",
        "escalated_to": "manager_001",
        "escalation_reason": "account_adjustment_required",
        "escalation_timestamp": "2024-01-15T15:30:00Z",
    },
    "enabled": True,
}
SEED_RESPONSE = {"id": SEED_SESSION, "agent_key": SEED_AGENT, **SEED_REQUEST}

# A Standard Webhooks secret the pipeline tests sign with, and the report dimensions they count.
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"0123456789abcdef0123456789abcdef").decode()
DIMS = ("priority", "channel", "issue_category", "resolution_status", "escalation_level")


def error(response: Any, status: int, code: str) -> dict[str, Any]:
    """Assert ``response`` is the error ``code`` with ``status`` in the documented body; return the body."""
    assert response.status_code == status, response.text
    body: dict[str, Any] = dict(TypeAdapter(ErrorBody).validate_python(response.json()))
    assert body["code"] == code
    assert body["request_id"] == response.headers["x-request-id"]
    return body


def caller(client: Any, headers: dict[str, str], agents: tuple[str, ...] = ()) -> Callable[..., Any]:
    """Make ``agents``, then return ``call(method, path, status=200, **kwargs)``: the request with
    ``headers``, asserting its status, answering its JSON (None when empty). ``client``: a TestClient."""
    for agent in agents:
        assert client.post("/v2/agents", json={"key": agent, "name": agent}, headers=headers).status_code == 201

    def call(method: str, path: str, status: int = 200, **kwargs: Any) -> Any:
        response = client.request(method, path, headers=headers, **kwargs)
        assert response.status_code == status, response.text
        return response.json() if response.content else None

    return call
