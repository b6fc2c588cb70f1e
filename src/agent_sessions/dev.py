"""``agent-sessions dev``: everything on one machine with no setup.

Starts a real Redis (AOF on, data under ``./.data/``), seeds it on the first run with an admin key, the
seed's agent and session, and serves the API. The admin key is kept in ``.data/admin-key`` (mode 0600)
so that later runs can print it again: Redis holds only its digest. This is for a developer's machine;
production runs ``agent-sessions serve`` against a managed Redis.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

import orjson

from agent_sessions.auth import Keyring, Role
from agent_sessions.config import Settings
from agent_sessions.errors import AgentAlreadyExists, SessionAlreadyExists
from agent_sessions.events import SYSTEM
from agent_sessions.models import MetadataLimits
from agent_sessions.redis_client import async_client, sync_client
from agent_sessions.services import Services
from agent_sessions.store import Store

SEED_AGENT = "agt_customer_support"
SEED_SESSION = "ase_customer_support_001"
SEEDED_MARK = "as:dev:seeded"
SEED_PATCH = {
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


async def _seed_data(settings: Settings) -> None:
    assert settings.redis_url
    client = async_client(settings.redis_url, settings.redis_timeout)
    services = Services(Store(client), MetadataLimits())
    try:
        if await client.set(SEEDED_MARK, "1", nx=True):
            with contextlib.suppress(AgentAlreadyExists):
                await services.create_agent({"key": SEED_AGENT, "name": "Customer support"})
            with contextlib.suppress(SessionAlreadyExists):
                await services.create_session(
                    SEED_AGENT,
                    {
                        "key": SEED_SESSION,
                        "name": "Billing inquiry",
                        "description": "Customer support session for billing inquiry",
                        "metadata": {
                            "customer_id": "customer_12345",
                            "priority": "high",
                            "channel": "web_chat",
                            "issue_category": "billing",
                        },
                    },
                    SYSTEM,
                )
    finally:
        await client.aclose()


def seed(settings: Settings, data_dir: Path) -> str:
    """Seed on first run; return the dev admin key (made anew if the stored one was revoked)."""
    assert settings.redis_url
    asyncio.run(_seed_data(settings))
    keyring = Keyring(sync_client(settings.redis_url))
    key_file = data_dir / "admin-key"
    if key_file.exists():
        secret = key_file.read_text().strip()
        if keyring.is_active(secret):
            return secret
    _, secret = keyring.create(Role.ADMIN, name="dev admin")
    fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(secret + "\n")
    return secret


def start_workers(redis_url: str) -> subprocess.Popen[bytes]:
    """``agent-sessions worker`` against the embedded Redis, in its own session so that Ctrl-C reaches
    only us and we stop it in order (workers first, Redis last)."""
    env = {"LOG_FORMAT": "text", **os.environ, "REDIS_URL": redis_url}  # a terminal: text unless asked
    env.pop("BROKER_URL", None)
    return subprocess.Popen([sys.executable, "-m", "agent_sessions.cli", "worker"], env=env, start_new_session=True)


def stop_workers(workers: subprocess.Popen[bytes]) -> None:
    if workers.poll() is None:
        workers.send_signal(signal.SIGTERM)
        try:
            workers.wait(40)
        except subprocess.TimeoutExpired:
            workers.kill()


def banner(base_url: str, redis_url: str, secret: str) -> str:
    url = f"{base_url}/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
    body = orjson.dumps(SEED_PATCH).decode()
    return "\n".join(
        [
            "agent-sessions dev is running.",
            f"  API:        {base_url}   (OpenAPI at {base_url}/openapi.json)",
            f"  Redis:      export REDIS_URL={redis_url}   (for `agent-sessions keys ...`)",
            f"  Admin key:  {secret}",
            "",
            "Try the seed's example PATCH:",
            f"  curl -s -X PATCH {url} \\",
            f"    -H 'x-api-key: {secret}' -H 'Content-Type: application/json' \\",
            f"    -d {shlex.quote(body)}",
            "",
            "Workers: the outbox relay and the reporting, escalation and webhook actors are running. Escalations",
            "are logged; set ESCALATION_WEBHOOK_URL and ESCALATION_WEBHOOK_SECRET to have them POSTed.",
            f"  Report:     curl -s {base_url}/v2/agents/{SEED_AGENT}/report -H 'x-api-key: {secret}'",
            "",
            "Ctrl-C stops the API, the workers and Redis; data stays in the data directory for the next run.",
        ]
    )
