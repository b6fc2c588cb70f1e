"""``agent-sessions dev``: everything on one machine with no setup.

Starts a real Redis (AOF on, data under ``./.data/``), moves data an earlier version left there into
this version's key layout (it runs every process of that store itself, so it can: ``agent-sessions
migrate``), seeds it on the first run with an admin key, the seed's agent and session, and serves the
API. The admin key is kept in ``.data/admin-key`` (mode 0600) so that later runs can print it again:
Redis holds only its digest. This is for a developer's machine; production runs ``agent-sessions serve``
against a managed Redis.

Stopping: Ctrl-C, SIGTERM and SIGHUP stop the API, then the workers, then Redis. Redis and the workers
also die with this process if it is killed outright (``process.die_with_parent``). A lock on
``<data dir>/dev.lock``, held by this process and its children, keeps a second ``dev`` off the same data
directory until every process of the first is gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import secrets
import shlex
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import orjson
import uvicorn

from agent_sessions import bootstrap
from agent_sessions.access.auth import Role
from agent_sessions.config import Settings
from agent_sessions.errors import AgentAlreadyExists, ConfigError, SessionAlreadyExists
from agent_sessions.events.model import SYSTEM
from agent_sessions.metrics import check_port
from agent_sessions.process import die_with_parent

SEED_AGENT = "agt_customer_support"
SEED_SESSION = "ase_customer_support_001"
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
    graph = bootstrap.api(settings)  # the API's own services: the same limits and history bounds
    services = graph.services
    try:
        await graph.layout.start()
        if await graph.store.claim_seed():
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
        await graph.aclose()


def seed(settings: Settings, data_dir: Path) -> str:
    """Seed on first run; return the dev admin key (made anew if the stored one was revoked)."""
    moved = bootstrap.migration(settings).run()
    if moved:
        print(f"moved the data in {data_dir} to this version's key layout: {sum(moved.values())} keys", flush=True)
    asyncio.run(_seed_data(settings))
    keyring = bootstrap.keyring(settings)
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


DEV_ORIGINS = ("http://localhost:*", "http://127.0.0.1:*")
TOKEN_SECRET_FILE = "client-token-secret"


def kept_token_secret(data_dir: Path) -> str:
    """The client token secret of this data directory (a new one for a new directory: written once the
    directory is locked, ``keep_token_secret``), so tokens minted before a restart stay valid."""
    path = data_dir / TOKEN_SECRET_FILE
    return path.read_text().strip() if path.exists() else secrets.token_urlsafe(48)


def keep_token_secret(data_dir: Path, secret: str) -> None:
    path = data_dir / TOKEN_SECRET_FILE
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secret + "\n")


def start_workers(redis_url: str, pass_fds: tuple[int, ...] = ()) -> subprocess.Popen[bytes]:
    """``agent-sessions worker`` against the embedded Redis, in its own session so that Ctrl-C reaches
    only us and we stop it in order (workers first, Redis last)."""
    # A terminal: text logs unless asked; webhook receivers on this machine are allowed unless asked.
    env = {"LOG_FORMAT": "text", "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "true", **os.environ, "REDIS_URL": redis_url}
    env.pop("BROKER_URL", None)
    return subprocess.Popen(
        [sys.executable, "-m", "agent_sessions.cli", "worker"],
        env=env,
        start_new_session=True,
        preexec_fn=die_with_parent,
        pass_fds=pass_fds,
    )


def stop_workers(workers: subprocess.Popen[bytes]) -> None:
    if workers.poll() is None:
        workers.send_signal(signal.SIGTERM)
        try:
            workers.wait(40)
        except subprocess.TimeoutExpired:
            workers.kill()


def banner(base_url: str, redis_url: str, secret: str, webhook_url: str | None, allow_private: bool = True) -> str:
    url = f"{base_url}/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
    body = orjson.dumps(SEED_PATCH).decode()
    cli = Path(sys.executable).parent / "agent-sessions"
    webhooks = (
        [f"are POSTed to {webhook_url}, signed with ESCALATION_WEBHOOK_SECRET."]
        if webhook_url
        else ["are recorded and logged, and sent to the endpoints that subscribe to session.escalated."]
    )
    return "\n".join(
        [
            "agent-sessions dev is running.",
            f"  API:        {base_url}   (try it at {base_url}/docs; OpenAPI at {base_url}/openapi.json)",
            f"  Console:    {base_url}/console   (sign in with the admin key below)",
            f"  Redis:      export REDIS_URL={redis_url}",
            f"  CLI:        {cli}   (or `source .venv/bin/activate`, then `agent-sessions ...`)",
            f"  Admin key:  {secret}",
            "",
            "Try the seed's example PATCH:",
            f"  curl -s -X PATCH {url} \\",
            f"    -H 'x-api-key: {secret}' -H 'Content-Type: application/json' \\",
            f"    -d {shlex.quote(body)}",
            "",
            "Workers: the outbox relay, the reporting and escalation actors and the webhook deliveries run.",
            "Escalations " + webhooks[0],
            f"  Webhooks:   curl -s -X POST {base_url}/v2/webhook_endpoints -H 'x-api-key: {secret}' \\",
            "                -H 'Content-Type: application/json' \\",
            '                -d \'{"url": "http://127.0.0.1:9000/hooks", "event_types": ["session.updated"]}\'',
            "              (receivers on this machine are allowed in dev: WEBHOOK_ALLOW_PRIVATE_NETWORKS=true)"
            if allow_private
            else "              (WEBHOOK_ALLOW_PRIVATE_NETWORKS=false: only public https:// or http:// receivers;"
            " 127.0.0.1 is refused)",
            f"  Report:     curl -s {base_url}/v2/agents/{SEED_AGENT}/report -H 'x-api-key: {secret}'",
            "",
            "Browser pages on http://localhost:* and http://127.0.0.1:* may call the API (CORS) with a client",
            "token your backend mints (never an API key in a page):",
            f"  curl -s -X POST {base_url}/v2/client_tokens -H 'x-api-key: {secret}' \\",
            "    -H 'Content-Type: application/json' \\",
            f'    -d \'{{"agent_key": "{SEED_AGENT}", "session_key": "{SEED_SESSION}", "role": "editor"}}\'',
            "",
            "Ctrl-C stops the API, the workers and Redis; data stays in the data directory for the next run.",
        ]
    )


def lock_data_dir(data_dir: Path) -> int:
    """An exclusive lock on ``data_dir/dev.lock`` (the fd): one ``dev`` per data directory. Children
    inherit the fd, so the lock holds until the last of them is gone."""
    data_dir.mkdir(parents=True, exist_ok=True)
    fd = os.open(data_dir / "dev.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise ConfigError(
            f"another `agent-sessions dev` (pid {holder}) is using {data_dir}; stop it first, or pass --data-dir"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, str(os.getpid()).encode())
    return fd


def run(settings: Settings, host: str, port: int, data_dir: Path) -> int:
    from agent_sessions.logs import dict_config
    from agent_sessions.redis.server import RedisServer
    from agent_sessions.web import server as web_server
    from agent_sessions.web.app import create_app

    redis_url = f"unix://{data_dir / 'redis.sock'}"
    local = os.environ.get("WEBHOOK_ALLOW_PRIVATE_NETWORKS") is None or settings.webhook_allow_private_networks
    update: dict[str, object] = {"redis_url": redis_url, "broker_url": None, "webhook_allow_private_networks": local}
    if os.environ.get("LOG_FORMAT") is None:
        update["log_format"] = "text"  # a terminal
    # Browser pages on this machine may call the API, with client tokens signed by a secret kept in the
    # data directory (unless the environment says otherwise).
    if os.environ.get("CORS_ALLOW_ORIGINS") is None:
        update["cors_allow_origins"] = DEV_ORIGINS
    if os.environ.get("CLIENT_TOKENS") is None:
        update["client_tokens"] = True
    token_secret = settings.client_token_secret or kept_token_secret(data_dir)
    update["client_token_secret"] = token_secret
    settings = settings.model_copy(update=update)
    log_config = dict_config(settings.log_level, settings.log_format)
    cfg = web_server.config(settings, create_app(settings), host, port, log_config=log_config)
    # A port in use fails now, before the data directory is made, Redis starts or anything is printed.
    sock = web_server.bind(cfg)
    if settings.metrics_port:
        check_port(settings.metrics_host, settings.metrics_port, "METRICS_PORT")
    lock = lock_data_dir(data_dir)
    keep_token_secret(data_dir, token_secret)
    redis_server = RedisServer(data_dir, unixsocket=data_dir / "redis.sock", die_with_parent=True, pass_fds=(lock,))
    assert redis_server.url == redis_url
    workers = None
    try:
        redis_server.start()
        secret = seed(settings, data_dir)
        workers = start_workers(redis_server.url, pass_fds=(lock,))
        server = uvicorn.Server(cfg)
        with _stop_signals(server):  # from here on, any stop signal is a graceful stop
            base = f"http://{host}:{port}"
            print(banner(base, redis_server.url, secret, settings.escalation_webhook_url, local), flush=True)
            web_server.run(settings, cfg, sock, server)
    finally:
        if workers is not None:
            stop_workers(workers)
        redis_server.stop()
        os.close(lock)
    return 0


@contextlib.contextmanager
def _stop_signals(server: uvicorn.Server) -> Iterator[None]:
    """Ctrl-C, SIGTERM and SIGHUP stop the server gracefully, whenever they arrive: before it serves
    (it then stops as soon as it has started), while it serves (uvicorn's own handlers for SIGINT and
    SIGTERM, which re-raise the signal afterwards: to this handler, never to the default action, which
    would end dev at once and leave the workers and Redis behind), or after."""

    def on_signal(signum: int, frame: FrameType | None) -> None:
        server.should_exit = True

    stop_signals = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {signum: signal.signal(signum, on_signal) for signum in stop_signals}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
