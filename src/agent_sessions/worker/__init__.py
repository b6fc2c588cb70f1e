"""The event pipeline's processes: the outbox relay, the broker, the actors and their context, and
``agent-sessions worker`` (``supervisor``), which runs them. Wired in ``agent_sessions.bootstrap``."""
