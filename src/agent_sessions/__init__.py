"""agent-sessions: the session-update service (PATCH /v2/agents/{agent_key}/sessions/{session_key})."""

__version__ = "0.2.0"
