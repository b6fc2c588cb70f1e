"""What each setting (``config.ENV_VARS``) is for, in a line: the configuration reference
(``docs/reference/configuration.md``) is made from this table with the fields' defaults and bounds,
and ``tools/reference_docs.py`` refuses a setting without a line here."""

HELP: dict[str, str] = {
    "REDIS_URL": (
        "`redis://host:port/db`, `rediss://…` or `unix:///path`. `serve` refuses to start without it; `dev` "
        "starts its own"
    ),
    "BROKER_URL": "Dramatiq broker: `redis://…` or `amqp://…` (RabbitMQ); none: `REDIS_URL`",
    "RATE_LIMIT_RATE": (
        "the default per-key rate limit: tokens per second (a key may have its own: `keys create --rate`)"
    ),
    "RATE_LIMIT_BURST": "the default per-key bucket size",
    "AUTH_FAILURE_RATE": "failed authentications allowed per client address, per second",
    "AUTH_FAILURE_BURST": "failed authentications allowed per client address in a burst",
    "ESCALATION_WEBHOOK_URL": "an endpoint (`whe_settings`) that gets every agent's escalations",
    "ESCALATION_WEBHOOK_SECRET": "its `whsec_<base64>` signing secret (`agent-sessions webhook-secret` makes one)",
    "REPORT_DIMENSIONS": "metadata keys the report counts by",
    "METADATA_MAX_KEYS": "metadata: top-level keys",
    "METADATA_MAX_KEY_LENGTH": "metadata: characters per key",
    "METADATA_MAX_DEPTH": "metadata: nesting levels",
    "METADATA_MAX_BYTES": "metadata: serialized size in bytes",
    "MAX_BODY_BYTES": "a request body, in bytes (more is 413)",
    "REDIS_TIMEOUT": (
        "seconds to connect, to wait for a reply, or to wait for a free pooled connection, before answering 503"
    ),
    "ESCALATE_WHEN_BECOMES": "the default rules (agents without their own): metadata values whose arrival escalates",
    "ESCALATE_WHEN_CHANGES": "the default rules: metadata keys whose change escalates",
    "WEBHOOK_MAX_RETRIES": "retries of a failed delivery before it is a dead letter (an endpoint may set its own)",
    "WEBHOOK_MIN_BACKOFF_MS": "the first retry's delay, doubling each time",
    "WEBHOOK_MAX_BACKOFF_MS": "the longest delay between retries",
    "WEBHOOK_TIMEOUT": "seconds an attempt may take",
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": (
        "allow webhook endpoints in private, loopback and link-local networks (`make dev` sets it)"
    ),
    "WEBHOOK_ENDPOINTS_MAX": "webhook endpoints in all",
    "WEBHOOK_BACKLOG_MAX": "per endpoint: messages not yet delivered (more are not queued; `recover` sends them later)",
    "WEBHOOK_LOG_MAX": "per endpoint: delivery rows kept (the oldest delivered are dropped first)",
    "WEBHOOK_CONCURRENCY": "attempts one worker process makes at once to one endpoint",
    "RELAY_CLAIM_IDLE_MS": (
        "how long a relay's lease on its partitions lasts unrenewed: within this a dead relay's partitions, "
        "and the entries it read and never acknowledged, are taken over"
    ),
    "RELAY_LINGER_MS": "how long a relay waits, once new events arrive, for more to send with them (0: none)",
    "REDIS_BROKER_HEARTBEAT_MS": "when Dramatiq's Redis broker gives a dead worker's messages back",
    "REDIS_BROKER_MAINTENANCE_CHANCE": (
        "how often Dramatiq's Redis broker checks for dead workers, per million commands"
    ),
    "HISTORY_MAX": "history entries kept per session (0: no count limit)",
    "LOG_LEVEL": "log filtering",
    "LOG_FORMAT": "`json` or `text`",
    "PROMETHEUS_MULTIPROC_DIR": (
        "where the API's processes share their metrics (`serve --workers` > 1 makes one when not set)"
    ),
    "IDEMPOTENCY_TTL": "seconds an Idempotency-Key's result is kept",
    "IDEMPOTENCY_MAX_PER_KEY": (
        "Idempotency-Key records one API key may hold in one partition (with its agents' keys); past it the "
        "oldest there is forgotten"
    ),
    "HISTORY_MAX_BYTES": "bytes of history entries kept per session (the newest entry always)",
    "REPORT_MAX_VALUES": "report buckets per dimension; later values count in `by_metadata_other`",
    "REPORT_VALUE_MAX_CHARS": "characters of a metadata value the report counts by",
    "REDIS_POOL_SIZE": (
        "Redis connections per API process; requests beyond it wait for one (up to `REDIS_TIMEOUT`) — load "
        "alone never makes a 503. Each batcher of script calls keeps up to 4 of them between batches (none "
        "when the pool has fewer than 8)"
    ),
    "REDIS_MIN_REPLICA_ACKS": (
        "replicas that must have a write before it is answered (`WAIT`, up to half `REDIS_TIMEOUT`; fewer: "
        "503); see the operations guide on replicas"
    ),
    "PARTITIONS": (
        "how many partitions agents are spread over (1-1024; each agent's keys share one hash tag); fixed "
        "for the life of a store, recorded in it, and checked by every process at start; `agent-sessions "
        "migrate` changes it"
    ),
    "METRICS_HOST": "the address of the Prometheus listener (never the API's port)",
    "METRICS_PORT": "its port (`0`: no listener)",
    "FORWARDED_ALLOW_IPS": (
        "proxies whose `X-Forwarded-For` is trusted (addresses or networks, comma-separated; `*`: any)"
    ),
    "MAX_HEADER_BYTES": "request line and headers; more is 431",
    "EVENTS_RETENTION": "seconds the event log keeps events",
    "EVENTS_MAX": "events the log keeps at most",
    "EVENTS_SCAN_MAX": "log entries one `GET /v2/events` page (or feed catch-up step) examines at most",
    "SSE_HEARTBEAT_SECONDS": "the live feed's comment line after this long without events (at most 15)",
    "SSE_QUEUE_MAX": "events waiting per live-feed subscriber before it is dropped",
    "SSE_MAX_SUBSCRIBERS": "live feeds per API process",
    "SSE_MAX_PER_KEY": "live feeds per API key per process",
    "REQUEST_READ_TIMEOUT": (
        "seconds for a request's headers and body to arrive once it starts (408, or the connection closed)"
    ),
    "AGENT_DELETE_BATCH": "sessions of a deleted agent removed per background step",
    "FILTER_SCAN_MAX": (
        "sessions one filtered or sorted list request examines (100 to 100,000); `/sessions/count` examines ten "
        "times as many"
    ),
    "EXPIRY_BATCH": "expired sessions one sweep step deletes (one pipeline of script calls)",
    "CORS_ALLOW_ORIGINS": (
        "origins whose browser pages may call the API, comma-separated (`https://app.example.com`, "
        "`https://*.example.com`, `http://localhost:*`; `*`: any)"
    ),
    "CLIENT_TOKENS": (
        "`true`: `POST /v2/client_tokens` mints short-lived tokens for browser pages, and the API takes them"
    ),
    "CLIENT_TOKEN_SECRET": "the key tokens are signed with (at least 32 characters; the same in every API process)",
}
