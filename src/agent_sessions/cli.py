"""The ``agent-sessions`` command: serve, dev, keys. Each subcommand reads settings once and delegates."""

from __future__ import annotations

import argparse
import asyncio
import base64
import os
import secrets
import sys
from collections.abc import Sequence
from pathlib import Path

from agent_sessions import __version__, bootstrap
from agent_sessions.access.auth import Role
from agent_sessions.config import Settings
from agent_sessions.errors import ConfigError, ReplicasBehind, StoreUnavailable
from agent_sessions.redis.keys import LAYOUT
from agent_sessions.sessions.models import AGENT_KEY_RE

DESCRIPTION = (
    "agent-sessions: the session-update service (PATCH /v2/agents/{agent_key}/sessions/{session_key}) and"
    " its event pipeline. Settings come from the environment (REDIS_URL, BROKER_URL, ...)."
)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="agent-sessions", description=DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"agent-sessions {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, title="commands", metavar="COMMAND")

    serve = sub.add_parser("serve", help="run the HTTP API (needs REDIS_URL)")
    serve.add_argument("--host", default="127.0.0.1", help="the address to listen on")
    serve.add_argument("--port", type=int, default=8000, help="the port to listen on")
    serve.add_argument("--workers", type=int, default=1, help="API processes (stateless; share one Redis)")

    dev = sub.add_parser("dev", help="run everything locally on an embedded Redis")
    dev.add_argument("--host", default="127.0.0.1", help="the address the API listens on")
    dev.add_argument("--port", type=int, default=8000, help="the API's port")
    dev.add_argument("--data-dir", default=".data", help="where Redis keeps its data (default ./.data)")

    worker = sub.add_parser("worker", help="run the outbox relay and the Dramatiq workers (needs REDIS_URL)")
    worker.add_argument("--processes", type=int, default=1, help="Dramatiq worker processes")
    worker.add_argument("--threads", type=int, default=8, help="threads per worker process")
    worker.add_argument("--health-file", type=Path, help="touched every 0.5 s while all parts run (healthchecks)")
    only = worker.add_mutually_exclusive_group()
    only.add_argument(
        "--relay-only",
        action="store_true",
        help="the outbox relay, agent purge, expiry sweep and event log retention, no Dramatiq workers",
    )
    only.add_argument("--actors-only", action="store_true", help="only the Dramatiq workers (no relay)")

    dead = sub.add_parser(
        "deadletters", help="webhook deliveries that exhausted their retries (every endpoint's, as the API lists them)"
    )
    dead_sub = dead.add_subparsers(dest="dead_command", required=True)
    dead_sub.add_parser("list", help="list dead letters")
    retry = dead_sub.add_parser("retry", help="send a dead letter again (with a fresh retry schedule)")
    retry.add_argument("id", help="the message id (evt_... or esc_...), as listed")
    retry.add_argument("--endpoint", help="only to this endpoint (whe_...); default: every endpoint it is dead for")

    sub.add_parser(
        "reindex",
        help="index every session for metadata_filter and sort (once after upgrading, or changing REPORT_DIMENSIONS)",
    )

    sub.add_parser(
        "migrate",
        help="move a store written by an earlier version into this version's key layout (stop the earlier"
        " version's processes first; safe to run again)",
    )

    sub.add_parser(
        "webhook-secret", help="print a new Standard Webhooks secret (whsec_...) for ESCALATION_WEBHOOK_SECRET"
    )

    listen = sub.add_parser(
        "listen",
        help="forward the live events of a running API to a local URL, signed as webhooks"
        " (AGENT_SESSIONS_URL, default http://127.0.0.1:8000; AGENT_SESSIONS_API_KEY)",
    )
    listen.add_argument("--forward-to", required=True, metavar="URL", help="where each event is POSTed")
    listen.add_argument("--agent-key", help="only this agent's events")
    listen.add_argument("--types", help="only these event types, comma-separated (e.g. session.escalated)")

    keys = sub.add_parser("keys", help="create, list and revoke API keys (needs REDIS_URL)")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True)
    create = keys_sub.add_parser("create", help="make a key; prints it once, alone on the last line")
    create.add_argument("--role", required=True, choices=[r.value for r in Role])
    create.add_argument("--agent", action="append", default=[], help="limit to this agent (repeatable)")
    create.add_argument("--name", default="", help="a name to tell keys apart (shown by keys list)")
    create.add_argument("--rate", type=float, help="tokens per second (default: RATE_LIMIT_RATE)")
    create.add_argument("--burst", type=int, help="bucket size (default: RATE_LIMIT_BURST)")
    keys_sub.add_parser("list", help="list keys (never their secrets)")
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id (kid_...) or by the key itself")
    revoke.add_argument("id_or_key", help="the key's id (kid_...) or the key itself")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        if args.command == "serve":
            return _serve(args, settings)
        if args.command == "dev":
            return _dev(args, settings)
        if args.command == "worker":
            from agent_sessions.worker.supervisor import run_worker

            return run_worker(
                settings,
                args.processes,
                args.threads,
                with_relay=not args.actors_only,
                with_actors=not args.relay_only,
                health_file=args.health_file,
            )
        if args.command == "deadletters":
            return _deadletters(args, settings)
        if args.command == "reindex":
            print(f"reindexed {bootstrap.reindexer(settings).run()} agents")
            return 0
        if args.command == "migrate":
            return _migrate(settings)
        if args.command == "listen":
            return _listen(args)
        if args.command == "webhook-secret":
            print("whsec_" + base64.b64encode(secrets.token_bytes(32)).decode())
            return 0
        return _keys(args, settings)
    except ConfigError as exc:
        print(f"agent-sessions: {exc}", file=sys.stderr)
        return 2
    except ReplicasBehind as exc:
        print(f"agent-sessions: {exc}", file=sys.stderr)
        return 3
    except StoreUnavailable:
        print("agent-sessions: cannot reach Redis at REDIS_URL", file=sys.stderr)
        return 3


def _listen(args: argparse.Namespace) -> int:
    """A client of an API, not a part of the service: its two settings are the client's own."""
    from agent_sessions.webhooks import listen

    key = os.environ.get("AGENT_SESSIONS_API_KEY", "")
    if not key:
        raise ConfigError("AGENT_SESSIONS_API_KEY is not set: the API key listen follows the feed with")
    api = os.environ.get("AGENT_SESSIONS_URL") or listen.DEFAULT_URL
    return listen.main(listen.Listen(api, key, args.forward_to, args.agent_key, args.types))


def _migrate(settings: Settings) -> int:
    done = bootstrap.migration(settings).run()
    if not done:
        print(f"the store is in key layout {LAYOUT} with PARTITIONS={settings.partitions}: nothing to move")
    for kind, count in sorted(done.items()):
        print(f"{kind}: {count}")
    if done:
        print(f"the store is now in key layout {LAYOUT} with PARTITIONS={settings.partitions}")
    return 0


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from agent_sessions.logs import dict_config
    from agent_sessions.web import server

    settings.required_redis_url("the API")
    log_config = dict_config(settings.log_level, settings.log_format)
    cfg = server.config(settings, server.APP_FACTORY, args.host, args.port, args.workers, log_config)
    server.run(settings, cfg)
    return 0


def _dev(args: argparse.Namespace, settings: Settings) -> int:
    from agent_sessions import dev

    return dev.run(settings, args.host, args.port, Path(args.data_dir).resolve())


def _deadletters(args: argparse.Namespace, settings: Settings) -> int:
    """A view of the endpoints' dead letters: the same rows and redeliveries as the API's."""
    return asyncio.run(_dead(args, settings))


async def _dead(args: argparse.Namespace, settings: Settings) -> int:
    services, close = bootstrap.webhook_services_for_cli(settings)
    try:
        dead = await services.dead_letters()
        if args.dead_command == "list":
            print(f"{'ENDPOINT':<29} {'MESSAGE':<37} {'TYPE':<18} {'TRIES':>5}  LAST ERROR")
            for endpoint, d in dead:
                print(f"{endpoint:<29} {d['event_id']:<37} {d['type']:<18} {d['attempts']:>5}  {d['last_error'] or ''}")
            return 0
        targets = [e for e, d in dead if d["event_id"] == args.id and args.endpoint in (None, e)]
        if not targets:
            print(f"agent-sessions: {args.id} is not a dead letter", file=sys.stderr)
            return 1
        for endpoint in targets:
            await services.redeliver(endpoint, args.id)
            print(f"re-sending {args.id} to {endpoint}")
        return 0
    finally:
        await close()


def _keys(args: argparse.Namespace, settings: Settings) -> int:
    keyring = bootstrap.keyring(settings)
    if args.keys_command == "create":
        bad = [a for a in args.agent if not AGENT_KEY_RE.fullmatch(a)]
        if bad:
            raise ConfigError(f"not an agent key: {', '.join(bad)}")
        if (args.rate is not None and args.rate <= 0) or (args.burst is not None and args.burst < 1):
            raise ConfigError("--rate must be > 0 and --burst >= 1")
        key, secret = keyring.create(Role(args.role), tuple(args.agent), args.name, args.rate, args.burst)
        scope = ",".join(key.agents) or "all agents"
        print(f"created {key.id} ({key.role}, {scope}); the key is shown once, store it now:")
        print(secret)
        return 0
    if args.keys_command == "list":
        print(f"{'ID':<17} {'ROLE':<7} {'AGENTS':<30} {'RATE':>6} {'BURST':>6} {'STATUS':<8} NAME")
        for k in keyring.list():
            rate = "-" if k.rate is None else f"{k.rate:g}"
            burst = "-" if k.burst is None else str(k.burst)
            status = "revoked" if k.revoked_at else "active"
            agents = ",".join(k.agents) or "*"
            print(f"{k.id:<17} {k.role:<7} {agents:<30} {rate:>6} {burst:>6} {status:<8} {k.name}")
        return 0
    revoked = keyring.revoke(args.id_or_key)
    if revoked is None:
        print("agent-sessions: no such key", file=sys.stderr)
        return 1
    print(f"revoked {revoked.id} {revoked.name}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
