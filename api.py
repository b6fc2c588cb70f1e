"""ASGI entry point: ``uvicorn api:app`` (settings come from the environment)."""

from agent_sessions.web.app import create_app

app = create_app()
