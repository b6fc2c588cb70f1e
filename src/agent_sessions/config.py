"""Settings: read once from the environment at start, validated, then passed down.

The settings are read nowhere else: entry points call :func:`Settings.from_env` and hand the result to
``create_app()`` or the command they run. Besides them, ``os.environ`` is read only where a process
hands its environment on: ``agent-sessions dev`` (its defaults for what is not set, and the worker it
starts), ``serve`` (the metrics directory its workers read) and ``agent-sessions listen`` (the
client's own AGENT_SESSIONS_URL and AGENT_SESSIONS_API_KEY, which are not server settings).
"""

from __future__ import annotations

import base64
import binascii
import os
import re
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from agent_sessions.errors import ConfigError

# Environment variable -> settings field. Only these names are settings (docker-compose is checked
# against this table, so a typo there fails a test instead of being silently ignored).
ENV_VARS: dict[str, str] = {
    "REDIS_URL": "redis_url",
    "BROKER_URL": "broker_url",
    "RATE_LIMIT_RATE": "rate_limit_rate",
    "RATE_LIMIT_BURST": "rate_limit_burst",
    "AUTH_FAILURE_RATE": "auth_failure_rate",
    "AUTH_FAILURE_BURST": "auth_failure_burst",
    "ESCALATION_WEBHOOK_URL": "escalation_webhook_url",
    "ESCALATION_WEBHOOK_SECRET": "escalation_webhook_secret",
    "REPORT_DIMENSIONS": "report_dimensions",
    "METADATA_MAX_KEYS": "metadata_max_keys",
    "METADATA_MAX_KEY_LENGTH": "metadata_max_key_length",
    "METADATA_MAX_DEPTH": "metadata_max_depth",
    "METADATA_MAX_BYTES": "metadata_max_bytes",
    "MAX_BODY_BYTES": "max_body_bytes",
    "REDIS_TIMEOUT": "redis_timeout",
    "ESCALATE_WHEN_BECOMES": "escalate_when_becomes",
    "ESCALATE_WHEN_CHANGES": "escalate_when_changes",
    "WEBHOOK_MAX_RETRIES": "webhook_max_retries",
    "WEBHOOK_MIN_BACKOFF_MS": "webhook_min_backoff_ms",
    "WEBHOOK_MAX_BACKOFF_MS": "webhook_max_backoff_ms",
    "WEBHOOK_TIMEOUT": "webhook_timeout",
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "webhook_allow_private_networks",
    "WEBHOOK_ENDPOINTS_MAX": "webhook_endpoints_max",
    "WEBHOOK_BACKLOG_MAX": "webhook_backlog_max",
    "WEBHOOK_LOG_MAX": "webhook_log_max",
    "WEBHOOK_CONCURRENCY": "webhook_concurrency",
    "RELAY_CLAIM_IDLE_MS": "relay_claim_idle_ms",
    "RELAY_LINGER_MS": "relay_linger_ms",
    "REDIS_BROKER_HEARTBEAT_MS": "redis_broker_heartbeat_ms",
    "REDIS_BROKER_MAINTENANCE_CHANCE": "redis_broker_maintenance_chance",
    "HISTORY_MAX": "history_max",
    "LOG_LEVEL": "log_level",
    "LOG_FORMAT": "log_format",
    "PROMETHEUS_MULTIPROC_DIR": "prometheus_multiproc_dir",
    "IDEMPOTENCY_TTL": "idempotency_ttl",
    "IDEMPOTENCY_MAX_PER_KEY": "idempotency_max_per_key",
    "HISTORY_MAX_BYTES": "history_max_bytes",
    "REPORT_MAX_VALUES": "report_max_values",
    "REPORT_VALUE_MAX_CHARS": "report_value_max_chars",
    "REDIS_POOL_SIZE": "redis_pool_size",
    "REDIS_MIN_REPLICA_ACKS": "redis_min_replica_acks",
    "PARTITIONS": "partitions",
    "METRICS_HOST": "metrics_host",
    "METRICS_PORT": "metrics_port",
    "FORWARDED_ALLOW_IPS": "forwarded_allow_ips",
    "MAX_HEADER_BYTES": "max_header_bytes",
    "EVENTS_RETENTION": "events_retention",
    "EVENTS_MAX": "events_max",
    "EVENTS_SCAN_MAX": "events_scan_max",
    "SSE_HEARTBEAT_SECONDS": "sse_heartbeat_seconds",
    "SSE_QUEUE_MAX": "sse_queue_max",
    "SSE_MAX_SUBSCRIBERS": "sse_max_subscribers",
    "SSE_MAX_PER_KEY": "sse_max_per_key",
    "REQUEST_READ_TIMEOUT": "request_read_timeout",
    "AGENT_DELETE_BATCH": "agent_delete_batch",
    "FILTER_SCAN_MAX": "filter_scan_max",
    "EXPIRY_BATCH": "expiry_batch",
    "CORS_ALLOW_ORIGINS": "cors_allow_origins",
    "CLIENT_TOKENS": "client_tokens",
    "CLIENT_TOKEN_SECRET": "client_token_secret",
}

ORIGIN_RE = re.compile(r"https?://[A-Za-z0-9.*-]+(:([0-9]{1,5}|\*))?")


def webhook_key(secret: str) -> bytes:
    """A Standard Webhooks secret ``whsec_<base64>`` -> the HMAC key bytes."""
    if not secret.startswith("whsec_"):
        raise ValueError("must look like whsec_<base64>")
    try:
        key = base64.b64decode(secret.removeprefix("whsec_"), validate=True)
    except binascii.Error:
        raise ValueError("must look like whsec_<base64>") from None
    if len(key) < 16:
        raise ValueError("must decode to at least 16 bytes")
    return key


class Settings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    redis_url: str | None = None
    broker_url: str | None = None
    rate_limit_rate: float = Field(default=50.0, gt=0)
    rate_limit_burst: int = Field(default=100, ge=1)
    # Failed authentications allowed per client address: a burst, then this many per second.
    auth_failure_rate: float = Field(default=1.0, gt=0)
    auth_failure_burst: int = Field(default=20, ge=1)
    escalation_webhook_url: str | None = None
    escalation_webhook_secret: str | None = None
    report_dimensions: tuple[str, ...] = (
        "priority",
        "channel",
        "issue_category",
        "resolution_status",
        "escalation_level",
    )
    metadata_max_keys: int = Field(default=64, ge=1)
    metadata_max_key_length: int = Field(default=64, ge=1)
    metadata_max_depth: int = Field(default=5, ge=1)
    metadata_max_bytes: int = Field(default=16 * 1024, ge=2)
    max_body_bytes: int = Field(default=64 * 1024, ge=1024)
    # Socket and connect timeout for Redis, in seconds: an outage must become a fast 503, not a hang.
    # It also bounds how long a request waits for one of the pool's REDIS_POOL_SIZE connections.
    redis_timeout: float = Field(default=1.0, gt=0)
    redis_pool_size: int = Field(default=64, ge=1, le=10_000)
    # A write is answered only once this many replicas have it (WAIT, up to half REDIS_TIMEOUT; fewer in
    # time: 503, the write applied on the primary). 0: replication is asynchronous, and a failover can
    # lose the last answered writes.
    redis_min_replica_acks: int = Field(default=0, ge=0, le=16)
    # How many partitions agents are spread over (each agent's keys share one hash slot of a Redis
    # Cluster). Fixed when a store is first used and recorded in it: a process with another value
    # refuses to start.
    partitions: int = Field(default=64, ge=1, le=1024)
    # The event log (GET /v2/events and its feed): kept this many seconds and at most this many events
    # (the workers trim it); a request examines at most EVENTS_SCAN_MAX entries for its filters.
    events_retention: float = Field(default=24 * 3600, gt=0)
    events_max: int = Field(default=10_000_000, ge=1)
    events_scan_max: int = Field(default=5_000, ge=100, le=100_000)
    # Session lists with metadata_filter or sort: sessions one request examines (one Redis script
    # call; about 5 µs each), and /sessions/count examines ten times as many, in ten calls.
    filter_scan_max: int = Field(default=1_000, ge=100, le=100_000)
    # The workers' expiry sweep: sessions expired per step (one pipeline of script calls).
    expiry_batch: int = Field(default=100, ge=1, le=10_000)
    # The live feed (GET /v2/events/stream): a comment line at least this often; per subscriber at most
    # SSE_QUEUE_MAX events waiting to be sent (a subscriber further behind is dropped); at most
    # SSE_MAX_SUBSCRIBERS streams per API process (more are refused with 503), and at most
    # SSE_MAX_PER_KEY of them for one API key (more: 429 for that key, others still open theirs).
    sse_heartbeat_seconds: float = Field(default=15.0, gt=0, le=15.0)
    sse_queue_max: int = Field(default=256, ge=1, le=100_000)
    sse_max_subscribers: int = Field(default=1000, ge=1, le=100_000)
    sse_max_per_key: int = Field(default=10, ge=1, le=100_000)
    # Prometheus metrics on their own listener, never on the API's port (0: no metrics listener).
    metrics_host: str = "127.0.0.1"
    metrics_port: int = Field(default=9464, ge=0, le=65_535)
    # Proxies whose X-Forwarded-For is trusted (comma-separated addresses or CIDRs, "*" for any);
    # empty: the client address is the TCP peer's.
    forwarded_allow_ips: str = ""
    # Request line and headers larger than this are refused with 431; headers and body must arrive
    # within REQUEST_READ_TIMEOUT seconds (a slow client gets 408 or a closed connection).
    max_header_bytes: int = Field(default=16 * 1024, ge=1024)
    request_read_timeout: float = Field(default=10.0, gt=0)

    # Escalation rule (README, "Events"): an update escalates when a metadata key becomes one of these
    # values (and was not that before), or when one of these metadata keys changes at all.
    escalate_when_becomes: tuple[tuple[str, str], ...] = (
        ("priority", "urgent"),
        ("resolution_status", "escalated"),
    )
    escalate_when_changes: tuple[str, ...] = ("escalation_level",)
    # Webhook delivery (every endpoint alike): retries with exponential backoff, then a dead letter.
    webhook_max_retries: int = Field(default=8, ge=0, le=100)
    webhook_min_backoff_ms: int = Field(default=1_000, ge=1)
    webhook_max_backoff_ms: int = Field(default=300_000, ge=1)
    webhook_timeout: float = Field(default=10.0, gt=0, le=300)
    # Destinations in private, loopback or link-local networks are refused unless this is true.
    webhook_allow_private_networks: bool = False
    # Bounds: endpoints in all; per endpoint, messages not yet delivered (past it new ones are refused
    # and counted; a recovery sends them later) and delivery rows kept (the oldest delivered go first);
    # attempts one worker process makes at once to one endpoint (a slow one holds only these).
    webhook_endpoints_max: int = Field(default=100, ge=1, le=10_000)
    webhook_backlog_max: int = Field(default=10_000, ge=1, le=10_000_000)
    webhook_log_max: int = Field(default=10_000, ge=1, le=10_000_000)
    webhook_concurrency: int = Field(default=8, ge=1, le=1_000)
    # Dramatiq's Redis broker gives back the messages a worker had taken (and not acknowledged) once its
    # heartbeat is this old — a killed worker's, and those a stopping worker had prefetched — checked on
    # about `chance` in a million broker commands. Dramatiq's defaults are 60 s and 1,000; consumers
    # heartbeat on every poll (100 ms when idle), so 15 s is safe, and 1% makes the check run within
    # seconds on a quiet system.
    redis_broker_heartbeat_ms: int = Field(default=15_000, ge=1_000)
    redis_broker_maintenance_chance: int = Field(default=10_000, ge=1, le=1_000_000)
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    log_format: Literal["json", "text"] = "json"
    # prometheus-client's multiprocess mode (set by `serve --workers N`): metrics of all API processes
    prometheus_multiproc_dir: str | None = None
    # Newest history entries kept per session (0: keep all), and how long Idempotency-Key results live.
    history_max: int = Field(default=1000, ge=0)
    # History entries past this many bytes per session are dropped, oldest first (the newest is kept).
    history_max_bytes: int = Field(default=1024 * 1024, ge=1024)
    idempotency_ttl: int = Field(default=24 * 3600, ge=1)
    # Idempotency records one API key may hold; past it the oldest record is forgotten.
    idempotency_max_per_key: int = Field(default=10_000, ge=1)
    # Report buckets per dimension, and the characters of a value that count (see README, Reporting).
    report_max_values: int = Field(default=100, ge=1, le=100_000)
    report_value_max_chars: int = Field(default=64, ge=1, le=1024)
    # Sessions a background step of an agent's deletion removes at once (one Lua call each step).
    agent_delete_batch: int = Field(default=100, ge=1, le=10_000)
    # A relay's lease on its partitions lasts this long unrenewed: a dead relay's partitions (and the
    # entries it read and did not acknowledge) are taken over within it.
    relay_claim_idle_ms: int = Field(default=30_000, ge=100)
    # Once new entries arrive, a relay waits this long for more before relaying them, so that events
    # travel in fewer, bigger Dramatiq messages (each costs several Redis calls and a worker dispatch).
    relay_linger_ms: int = Field(default=10, ge=0, le=1_000)

    # Browser frontends: the origins whose pages may call the API (comma-separated; "*" any; a "*" in one
    # stands for host or port characters, e.g. http://localhost:*). None by default: no CORS headers.
    cors_allow_origins: tuple[str, ...] = ()
    # Short-lived client tokens (POST /v2/client_tokens) for pages that must not hold an API key: off
    # unless CLIENT_TOKENS is true, which needs CLIENT_TOKEN_SECRET (at least 32 bytes) to sign them.
    client_tokens: bool = False
    client_token_secret: str | None = Field(default=None, min_length=32, repr=False)

    @field_validator("report_dimensions", "escalate_when_changes", "cors_allow_origins", mode="before")
    @classmethod
    def _split_list(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("escalate_when_becomes", mode="before")
    @classmethod
    def _split_pairs(cls, value: Any) -> Any:
        if isinstance(value, str):
            pairs = [part.strip().split("=", 1) for part in value.split(",") if part.strip()]
            if any(len(p) != 2 or not p[0] for p in pairs):
                raise ValueError("expected key=value pairs separated by commas")
            return tuple((k.strip(), v.strip()) for k, v in pairs)
        return value

    @field_validator("escalation_webhook_secret")
    @classmethod
    def _check_secret(cls, value: str | None) -> str | None:
        if value is not None:
            webhook_key(value)
        return value

    @field_validator("cors_allow_origins")
    @classmethod
    def _check_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin != "*" and not ORIGIN_RE.fullmatch(origin):
                raise ValueError(f"{origin!r} is not an origin (scheme://host[:port], no path; * for any)")
        return origins

    @model_validator(mode="after")
    def _tokens_need_a_secret(self) -> Settings:
        if self.client_tokens and not self.client_token_secret:
            raise ValueError("CLIENT_TOKENS=true needs CLIENT_TOKEN_SECRET (at least 32 characters) to sign tokens")
        return self

    @property
    def webhook_key(self) -> bytes | None:
        return None if self.escalation_webhook_secret is None else webhook_key(self.escalation_webhook_secret)

    @property
    def effective_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    @property
    def replica_ack_timeout_ms(self) -> int:
        """How long a write waits for its replicas: half REDIS_TIMEOUT, so the socket never times out first."""
        return max(1, int(self.redis_timeout * 500))

    def required_redis_url(self, who: str) -> str:
        """REDIS_URL, or a ConfigError saying that ``who`` needs it (``agent-sessions dev`` needs none)."""
        if not self.redis_url:
            raise ConfigError(f"REDIS_URL is not set: {who} needs a Redis server (or run `agent-sessions dev`)")
        return self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {field: env[name] for name, field in ENV_VARS.items() if env.get(name)}
        if "log_level" in values:
            values["log_level"] = values["log_level"].upper()
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            fields = {v: k for k, v in ENV_VARS.items()}
            problems = [
                f"{fields.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}"
                if e["loc"]
                else e["msg"].removeprefix("Value error, ")
                for e in exc.errors()
            ]
            raise ConfigError("invalid settings: " + "; ".join(problems)) from None
