"""``agent-sessions listen --forward-to URL``: the live feed of a running API forwarded to a local
receiver, signed as webhooks are (as ``stripe listen``): for developing a receiver without
registering an endpoint.

It follows ``GET /v2/events/stream`` of ``AGENT_SESSIONS_URL`` (default ``http://127.0.0.1:8000``) with
the API key in ``AGENT_SESSIONS_API_KEY`` (``--agent-key`` and ``--types`` filter it), and POSTs each
event to the URL as a Standard Webhooks message (``webhook-id`` the event id; the body ``{"type",
"timestamp", "data": event}``), signed with a ``whsec_`` secret made for this run and printed first.
One line per event: its type, session, version and the receiver's answer. A dropped connection is
followed again from the last event received (``Last-Event-ID``), after a pause that grows to
``RETRY_MAX_S``: no event is missed, none forwarded twice. It runs until interrupted.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
import orjson

from agent_sessions.config import webhook_key
from agent_sessions.webhooks import signing as webhooks

DEFAULT_URL = "http://127.0.0.1:8000"
RETRY_MAX_S = 5.0
FORWARD_TIMEOUT_S = 10.0


class Refused(Exception):
    """The API refused the feed for good (a bad key, a bad filter): retrying would not help."""


@dataclass(frozen=True)
class Listen:
    api: str  # the API's base URL
    key: str  # an API key (viewer or more)
    forward_to: str
    agent: str | None = None
    types: str | None = None

    def stream_url(self) -> str:
        query = {k: v for k, v in (("agent_key", self.agent), ("types", self.types)) if v}
        return f"{self.api.rstrip('/')}/v2/events/stream" + (f"?{urlencode(query)}" if query else "")


@dataclass(frozen=True)
class Message:
    id: str  # the cursor after it: where a reconnection resumes
    type: str
    data: bytes


async def messages(response: aiohttp.ClientResponse) -> AsyncIterator[Message]:
    """The Server-Sent Events of a stream (comment lines, the keep-alives, skipped)."""
    fields: dict[str, str] = {}
    async for raw in response.content:
        line = raw.decode().rstrip("\r\n")
        if not line:
            if "data" in fields:
                yield Message(fields.get("id", ""), fields.get("event", "message"), fields["data"].encode())
            fields = {}
        elif not line.startswith(":"):
            name, _, value = line.partition(":")
            fields[name] = value.removeprefix(" ")


async def run(listen: Listen, secret: str, out: Callable[[str], None]) -> None:
    """Follow and forward until cancelled. ``Refused`` when the API refuses the feed (401, 403, 400)."""
    key = webhook_key(secret)
    last: str | None = None
    pause = 0.5
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=10)
    async with aiohttp.ClientSession(timeout=timeout) as feed, aiohttp.ClientSession() as forward:
        while True:
            headers = {"x-api-key": listen.key, "accept": "text/event-stream"}
            if last:
                headers["last-event-id"] = last
            try:
                async with feed.get(listen.stream_url(), headers=headers) as response:
                    if response.status in (400, 401, 403, 404):
                        raise Refused(f"{response.status}: {(await response.text())[:300]}")
                    response.raise_for_status()
                    out(f"following {listen.stream_url()}" + (" (resumed)" if last else ""))
                    pause = 0.5
                    async for message in messages(response):
                        await forward_one(forward, listen.forward_to, key, message, out)
                        last = message.id or last
            except (aiohttp.ClientError, TimeoutError) as exc:
                out(f"the feed was cut ({exc.__class__.__name__}); following again in {pause:g} s")
            await asyncio.sleep(pause)
            pause = min(RETRY_MAX_S, pause * 2)


async def forward_one(
    session: aiohttp.ClientSession, url: str, key: bytes, message: Message, out: Callable[[str], None]
) -> None:
    event = orjson.loads(message.data)
    body = orjson.dumps({"type": message.type, "timestamp": event.get("occurred_at"), "data": event})
    headers = webhooks.headers([key], str(event.get("event_id", message.id)), body)
    what = f"{message.type} {event.get('agent_key')}/{event.get('session_key')} v{event.get('version')}"
    try:
        timeout = aiohttp.ClientTimeout(total=FORWARD_TIMEOUT_S)
        async with session.post(url, data=body, headers=headers, timeout=timeout, allow_redirects=False) as answer:
            await answer.read()
            out(f"{time.strftime('%H:%M:%S')}  {what}  -> {answer.status}")
    except (aiohttp.ClientError, TimeoutError) as exc:
        out(f"{time.strftime('%H:%M:%S')}  {what}  -> no answer from {url} ({exc.__class__.__name__})")


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def main(listen: Listen) -> int:
    secret = new_secret()

    def out(line: str) -> None:
        print(line, flush=True)

    out(f"forwarding events to {listen.forward_to}, signed (Standard Webhooks) with {secret}")
    try:
        asyncio.run(run(listen, secret, out))
    except KeyboardInterrupt:
        return 0
    except Refused as exc:
        print(f"agent-sessions listen: the API refused the feed: {exc}", file=sys.stderr)
        return 1
    return 0
