"""Running the API under uvicorn, the same way for ``serve`` and ``dev``: our HTTP protocol (header size
and read-time limits), proxy headers trusted only from ``FORWARDED_ALLOW_IPS``, and the metrics
listener on its own port."""

from __future__ import annotations

import os
import socket
import tempfile
from typing import Any

import uvicorn
from uvicorn.supervisors import Multiprocess

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError
from agent_sessions.metrics import check_port, serve_metrics
from agent_sessions.redis.keys import Keys
from agent_sessions.web.protocol import GuardedHttpToolsProtocol

APP_FACTORY = "agent_sessions.web.app:create_app"


def config(
    settings: Settings, app: Any, host: str, port: int, workers: int = 1, log_config: dict[str, Any] | None = None
) -> uvicorn.Config:
    """``app``: an ASGI app, or ``APP_FACTORY`` (needed for ``workers`` > 1: each process builds its own
    from the same environment)."""
    trusted = settings.forwarded_allow_ips.strip()
    cfg = uvicorn.Config(
        app,
        factory=app == APP_FACTORY,
        host=host,
        port=port,
        workers=workers,
        http=GuardedHttpToolsProtocol,
        access_log=False,  # ours, in web/edge.py
        # No "server: uvicorn" on every answer: it tells a scanner what runs here, and is one header
        # more for uvicorn to check and write per response. (Date stays: HTTP wants it.)
        server_header=False,
        proxy_headers=bool(trusted),
        forwarded_allow_ips=trusted,  # "" trusts no proxy (uvicorn's own default trusts 127.0.0.1)
        h11_max_incomplete_event_size=settings.max_header_bytes,
        log_config=log_config,
    )
    # Read by GuardedHttpToolsProtocol; an attribute of the config, so it reaches every worker process.
    cfg.request_read_timeout = settings.request_read_timeout  # type: ignore[attr-defined]
    return cfg


def bind(cfg: uvicorn.Config) -> socket.socket:
    """The listening socket, bound now: a port in use fails here, before anything is announced."""
    try:
        sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((cfg.host, cfg.port))
    except OSError as exc:
        raise ConfigError(f"cannot listen on {cfg.host}:{cfg.port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def run(
    settings: Settings, cfg: uvicorn.Config, sock: socket.socket | None = None, server: uvicorn.Server | None = None
) -> None:
    """Serve until stopped, with the metrics listener. Several workers: the metrics are served by this
    supervising process, from prometheus-client's multiprocess files of all of them. ``server``: the
    one-process server to run (made here when not given)."""
    sock = sock or bind(cfg)
    if settings.metrics_port:
        check_port(settings.metrics_host, settings.metrics_port, "METRICS_PORT")
    multiprocess_dir = settings.prometheus_multiproc_dir
    if cfg.workers > 1 and not multiprocess_dir:
        multiprocess_dir = tempfile.mkdtemp(prefix="agent-sessions-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = multiprocess_dir  # the workers read it when they start
    if settings.metrics_port and settings.redis_url:
        client = bootstrap.metrics_client(settings)
        serve_metrics(settings.metrics_host, settings.metrics_port, client, Keys.of(settings), multiprocess_dir)
    if cfg.workers > 1:
        Multiprocess(cfg, sockets=[sock]).run()
    else:
        (server or uvicorn.Server(cfg)).run(sockets=[sock])
