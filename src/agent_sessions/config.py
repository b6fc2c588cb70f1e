"""Settings: read once from the environment at start, validated, then passed down.

Nothing else in the package reads ``os.environ``; entry points call :func:`Settings.from_env` and hand
the result to ``create_app()`` or the CLI command they run.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
}


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
    redis_timeout: float = Field(default=1.0, gt=0)

    @field_validator("report_dimensions", mode="before")
    @classmethod
    def _split_dimensions(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @property
    def effective_broker_url(self) -> str | None:
        return self.broker_url or self.redis_url

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {field: env[name] for name, field in ENV_VARS.items() if env.get(name)}
        values.update(overrides)
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            fields = {v: k for k, v in ENV_VARS.items()}
            problems = [f"{fields.get(str(e['loc'][0]), e['loc'][0])}: {e['msg']}" for e in exc.errors()]
            raise ConfigError("invalid settings: " + "; ".join(problems)) from None
