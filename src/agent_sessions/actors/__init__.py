"""The Dramatiq actors. Import only after ``setup_broker()``: actors bind to the broker at import."""

from agent_sessions.actors import escalation, reporting, webhooks

__all__ = ["escalation", "reporting", "webhooks"]
