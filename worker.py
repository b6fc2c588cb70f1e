"""Dramatiq entry point: ``dramatiq worker`` (settings from the environment; see agent_sessions.workers)."""

from agent_sessions.workers import actors, broker

__all__ = ["actors", "broker"]
