"""Dramatiq's entry module (``dramatiq agent_sessions.workers``), wired by ``bootstrap.dramatiq_workers``."""

from agent_sessions import bootstrap
from agent_sessions.config import Settings
from agent_sessions.logs import configure

settings = Settings.from_env()
configure(settings.log_level, settings.log_format)
broker = bootstrap.dramatiq_workers(settings)
