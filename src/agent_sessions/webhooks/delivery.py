"""Webhook delivery: a loop of ``agent-sessions worker`` that POSTs queued messages to their endpoints.

Why not a Dramatiq actor: Dramatiq's worker threads are shared by every destination, so one slow
receiver (2 s per answer) would soon hold all of them and delay every other endpoint; isolating
endpoints would take a queue per endpoint, which Dramatiq cannot declare at run time. Here each
endpoint has its own queue in Redis (``lua/_delivery.lua``) and each worker process makes at most
``WEBHOOK_CONCURRENCY`` attempts at once per endpoint, on one asyncio loop: a slow endpoint holds its
own slots and nothing else.

Every poll (at once after one that started attempts or when an attempt ends, else after ``POLL_S``)
leases the due messages of every enabled
endpoint with free slots, in one script call. An attempt resolves the destination, refuses it when it
is in a private network (``destinations``), POSTs the signed message to the checked address, and
records the outcome (``lua/delivery_result.lua``): delivered, failed and retried after a backoff, or
dead after the endpoint's ``max_retries`` (default ``WEBHOOK_MAX_RETRIES``) + 1 attempts. A worker
killed mid-attempt leaves a lease that runs out after ``WEBHOOK_TIMEOUT`` + ``LEASE_MARGIN_S``; any
worker then tries again. Delivery is therefore at least once: receivers dedupe on ``webhook-id``.

Logs: one WARNING line per failed attempt (message, destination, what went wrong, attempt n of m), one
ERROR line when a message becomes a dead letter.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from dataclasses import dataclass

import aiohttp
import orjson

from agent_sessions.config import Settings, webhook_key
from agent_sessions.errors import StoreUnavailable
from agent_sessions.webhooks import signing as webhooks
from agent_sessions.webhooks.model import SETTINGS_ENDPOINT, Fields
from agent_sessions.webhooks.store import Webhooks

log = logging.getLogger("agent_sessions.deliveries")
POLL_S = 0.02
REFRESH_S = 1.0
LEASE_MARGIN_S = 5.0


@dataclass(frozen=True)
class Target:
    id: str
    url: str
    secrets: tuple[tuple[bytes, int], ...]  # (key, expires at in ms; 0: never), newest first
    tries: int  # attempts before a message is a dead letter
    backoff: tuple[int, int]  # ms: after the first failure, and at most

    def keys(self, now_ms: int) -> list[bytes]:
        return [key for key, expires in self.secrets if expires == 0 or expires > now_ms]


def target(endpoint: str, fields: Fields, settings: Settings) -> Target:
    """From the record's fields; the retry schedule the endpoint does not set is the settings'."""
    keys = tuple((webhook_key(s["secret"]), int(s["expires_ms"])) for s in orjson.loads(fields["secrets"]))
    retries = int(fields.get("max_retries") or settings.webhook_max_retries)
    low = int(fields.get("min_backoff_ms") or settings.webhook_min_backoff_ms)
    high = int(fields.get("max_backoff_ms") or settings.webhook_max_backoff_ms)
    return Target(endpoint, fields["url"], keys, retries + 1, (low, max(low, high)))


class DeliveryLoop:
    def __init__(self, settings: Settings, webhooks_store: Webhooks) -> None:
        self.settings = settings
        self.store = webhooks_store
        self.clients: dict[str, aiohttp.ClientSession] = {}  # one keep-alive pool per endpoint
        self.inflight: dict[str, int] = {}
        self.tasks: set[asyncio.Task[None]] = set()
        self.freed = asyncio.Event()
        self._polled: list[str] = []
        self._refreshed = -REFRESH_S
        self.lease_ms = int((settings.webhook_timeout + LEASE_MARGIN_S) * 1000)
        s = settings
        self.settings_target = (  # ESCALATION_WEBHOOK_URL: no record, the settings are all there is
            Target(
                SETTINGS_ENDPOINT,
                s.escalation_webhook_url,
                ((s.webhook_key, 0),),
                s.webhook_max_retries + 1,
                (s.webhook_min_backoff_ms, s.webhook_max_backoff_ms),
            )
            if s.escalation_webhook_url and s.webhook_key
            else None
        )

    def client(self, endpoint: str) -> aiohttp.ClientSession:
        """The endpoint's own keep-alive pool of at most WEBHOOK_CONCURRENCY connections. Receivers'
        cookies are never kept (a hostile one could send any number)."""
        client = self.clients.get(endpoint)
        if client is None:
            client = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.settings.webhook_concurrency),
                timeout=aiohttp.ClientTimeout(total=self.settings.webhook_timeout),
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
            )
            self.clients[endpoint] = client
        return client

    async def polled(self) -> list[str]:
        """The endpoints whose queues are polled: the enabled ones (read again every ``REFRESH_S``)."""
        if time.monotonic() - self._refreshed >= REFRESH_S:
            found = [e for e, fields in await self.store.all() if fields.get("enabled") == "1"]
            if self.settings_target is not None:
                found.append(SETTINGS_ENDPOINT)
            self._polled, self._refreshed = found, time.monotonic()
            for gone in [e for e in self.clients if e not in found and not self.inflight.get(e)]:
                await self.clients.pop(gone).close()
        return self._polled

    async def step(self) -> int:
        """Lease what is due for every endpoint with free slots and start those attempts."""
        limit = self.settings.webhook_concurrency
        free = [(e, limit - self.inflight.get(e, 0)) for e in await self.polled()]
        wanted = [(e, n) for e, n in free if n > 0]
        if not wanted:
            return 0
        started = 0
        for endpoint, claimed in (await self.store.claim(wanted, self.lease_ms)).items():
            if not claimed.messages:
                continue
            # The endpoint as it is at this claim: a change of URL, secrets or retries applies at once.
            to = target(endpoint, claimed.fields, self.settings) if claimed.fields else self.settings_target
            if to is None:
                continue  # deleted since the endpoints were read (its queue went with it)
            for message, body in claimed.messages:
                self.inflight[endpoint] = self.inflight.get(endpoint, 0) + 1
                task = asyncio.create_task(self.attempt(to, message, body))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
                started += 1
        return started

    async def attempt(self, to: Target, message: str, body: bytes) -> None:
        try:
            # ESCALATION_WEBHOOK_URL is the operator's own choice, not an API client's: never refused.
            trusted = self.settings.webhook_allow_private_networks or to.id == SETTINGS_ENDPOINT
            keys = to.keys(int(time.time() * 1000))
            went = await webhooks.attempt(self.client(to.id), to.url, keys, message, body, trusted)
            status = await self.store.result(
                to.id, message, went.status_code, went.error, to.tries, to.backoff, went.duration_ms
            )
            self._log(to, message, status, went.error)
        except StoreUnavailable:
            log.warning("webhook %s to %s: outcome not recorded (Redis unavailable); tried again later", message, to.id)
        finally:
            self.inflight[to.id] -= 1
            self.freed.set()  # a slot is free: poll now rather than at the next tick

    def _log(self, to: Target, message: str, status: str, error: str) -> None:
        if status == "dead":
            log.error(
                "webhook %s to %s (%s) is a dead letter after %d attempts: %s; "
                "POST /v2/webhook_endpoints/%s/deliveries/%s/redeliver sends it again",
                message, to.id, to.url, to.tries, error, to.id, message,
            )  # fmt: skip
        elif status == "failed":
            log.warning("webhook %s to %s (%s) failed: %s; tried again later", message, to.id, to.url, error)
        elif status == "delivered":
            log.debug("webhook %s to %s delivered", message, to.id)

    def run(self, stop: threading.Event) -> None:
        """Deliver until ``stop`` is set (a thread of ``agent-sessions worker``); closes the clients."""

        async def main() -> None:
            try:
                await self.loop(stop)
            finally:
                for client in self.clients.values():
                    await client.close()
                await self.store.redis.aclose()

        asyncio.run(main())

    async def loop(self, stop: threading.Event) -> None:
        log.info("webhook deliveries started")
        while not stop.is_set():
            try:
                started = await self.step()
            except StoreUnavailable as exc:
                log.warning("webhook deliveries: Redis unavailable (%s); retrying", exc)
                started = 0
                await asyncio.sleep(1.0)
            if not started:
                self.freed.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self.freed.wait(), POLL_S)
        if self.tasks:  # let attempts under way finish and record their outcome
            await asyncio.wait(self.tasks, timeout=self.settings.webhook_timeout + 1)
