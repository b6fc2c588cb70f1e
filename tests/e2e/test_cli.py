"""The CLI as a user runs it: make keys, serve over real HTTP, use and revoke a key."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import httpx
import pytest
from standardwebhooks import Webhook

from agent_sessions import __version__
from agent_sessions.config import Settings, webhook_key
from agent_sessions.redis.server import free_port
from tests.support.processes import command, env, serving, wait_http

pytestmark = pytest.mark.e2e


def cli(*args: str, redis_url: str | None = None) -> subprocess.CompletedProcess[str]:
    extra = {"REDIS_URL": redis_url} if redis_url else {}
    return subprocess.run([command(), *args], capture_output=True, text=True, env=env(**extra), timeout=60)


def test_serve_refuses_to_start_without_redis_url() -> None:
    result = cli("serve", "--port", str(free_port()))
    assert result.returncode == 2
    assert "REDIS_URL" in result.stderr


def test_keys_need_redis_url_and_validate_input(redis_url: str) -> None:
    assert cli("keys", "list").returncode == 2
    assert cli("keys", "create", "--role", "admin", "--agent", "nope", redis_url=redis_url).returncode == 2
    assert cli("keys", "create", "--role", "root", redis_url=redis_url).returncode != 0
    assert cli("keys", "revoke", "kid_000000000000", redis_url=redis_url).returncode == 1


@pytest.fixture
def server(redis_url: str) -> Iterator[str]:
    with serving(redis_url) as base:
        yield base


def test_key_made_by_cli_works_over_http_until_revoked(redis_url: str, server: str) -> None:
    made = cli(
        "keys",
        "create",
        "--role",
        "admin",
        "--name",
        "ops",
        "--rate",
        "5",
        "--burst",
        "10",
        redis_url=redis_url,
    )
    assert made.returncode == 0, made.stderr
    secret = made.stdout.strip().splitlines()[-1]
    assert secret.startswith("ask_") and len(secret) >= 28
    headers = {"x-api-key": secret}

    created = httpx.post(f"{server}/v2/agents", json={"key": "agt_cli", "name": "CLI"}, headers=headers)
    assert created.status_code == 201, created.text
    session = httpx.post(f"{server}/v2/agents/agt_cli/sessions", json={"key": "ase_1"}, headers=headers)
    assert session.status_code == 201
    patched = httpx.patch(
        f"{server}/v2/agents/agt_cli/sessions/ase_1",
        json={"metadata": {"priority": "urgent"}},
        headers=headers,
    )
    assert patched.json()["metadata"] == {"priority": "urgent"} and patched.json()["version"] == 2

    listed = cli("keys", "list", redis_url=redis_url).stdout
    key_id = made.stdout.split()[1]
    assert key_id.startswith("kid_") and key_id in listed and "ops" in listed and "admin" in listed
    assert secret not in listed and secret[4:] not in listed
    assert " 5 " in listed and " 10 " in listed

    assert cli("keys", "revoke", key_id, redis_url=redis_url).returncode == 0
    # Revocation is checked in Redis on every request: the very next one is refused.
    assert httpx.get(f"{server}/v2/agents/agt_cli", headers=headers).status_code == 401
    assert "revoked" in cli("keys", "list", redis_url=redis_url).stdout


def test_revoke_by_the_key_itself(redis_url: str, server: str) -> None:
    secret = cli("keys", "create", "--role", "viewer", redis_url=redis_url).stdout.strip().splitlines()[-1]
    assert httpx.get(f"{server}/v2/agents", headers={"x-api-key": secret}).status_code == 200
    assert cli("keys", "revoke", secret, redis_url=redis_url).returncode == 0
    assert httpx.get(f"{server}/v2/agents", headers={"x-api-key": secret}).status_code == 401


def test_serve_with_several_workers_serves_metrics_on_its_own_port(redis_url: str) -> None:
    metrics_port = free_port()
    with serving(redis_url, "--workers", "2", METRICS_PORT=str(metrics_port)) as base:
        wait_http(f"{base}/readyz")
        for _ in range(20):
            httpx.get(f"{base}/healthz")
        assert httpx.get(f"{base}/metrics").status_code == 404  # never on the API's port
        # multiprocess metrics: the supervising process counts the requests of both workers
        text = httpx.get(f"http://127.0.0.1:{metrics_port}/metrics").text
        counted = sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith("agent_sessions_http_requests_total{") and 'route="/healthz"' in line
        )
        assert counted >= 20
        assert "agent_sessions_outbox_backlog" in text


def test_webhook_secret_makes_a_secret_the_settings_and_verifiers_accept() -> None:
    made = cli("webhook-secret")
    assert made.returncode == 0
    secret = made.stdout.strip()
    assert secret.startswith("whsec_") and len(webhook_key(secret)) == 32
    assert Settings.from_env({"ESCALATION_WEBHOOK_SECRET": secret}).webhook_key == webhook_key(secret)
    Webhook(secret)  # a real client's verifier takes it too
    assert cli("webhook-secret").stdout.strip() != secret


def test_version_and_a_plain_text_help_listing_every_command() -> None:
    version = subprocess.run([command(), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and version.stdout.strip() == f"agent-sessions {__version__}"
    shown = subprocess.run([command(), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0 and "``" not in shown.stdout
    listed = {line.split()[0] for line in shown.stdout.split("commands:")[1].splitlines()[2:] if line.strip()}
    assert {"serve", "dev", "worker", "keys", "deadletters", "reindex", "migrate", "webhook-secret"} <= listed
