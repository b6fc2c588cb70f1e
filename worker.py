"""Dramatiq entry point from a checkout: ``dramatiq worker`` (the same as ``dramatiq agent_sessions.workers``)."""

from agent_sessions.workers import broker

__all__ = ["broker"]
