"""An ASGI app served by uvicorn in this event loop, on a free port, over real sockets: for the tests of
our HTTP protocol (``web/protocol.py``), which lives below the application."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn


@asynccontextmanager
async def serving(app: Any, protocol: type[asyncio.Protocol], **settings: Any) -> AsyncIterator[int]:
    """Yields the port. ``settings``: attributes set on uvicorn's config after it is made (ours, such as
    ``request_read_timeout``, and uvicorn's own, such as ``timeout_keep_alive`` in fractions of a second)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    cfg = uvicorn.Config(app, http=protocol, log_level="critical", lifespan="off")
    for name, value in settings.items():
        setattr(cfg, name, value)
    server = uvicorn.Server(cfg)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:  # noqa: ASYNC110 - uvicorn sets a flag, not an event
        await asyncio.sleep(0.01)
    try:
        yield sock.getsockname()[1]
    finally:
        server.should_exit = True
        await task
