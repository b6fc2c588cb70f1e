"""Dramatiq's entry module (``dramatiq agent_sessions.workers``): the broker first, then the actors."""

from agent_sessions.broker import setup_broker
from agent_sessions.config import Settings
from agent_sessions.logs import configure

settings = Settings.from_env()
configure(settings.log_level, settings.log_format)
broker = setup_broker(settings)

from agent_sessions import actors  # noqa: E402  (actors bind to the broker built above)

__all__ = ["actors", "broker", "settings"]
