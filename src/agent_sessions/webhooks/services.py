"""The use cases of webhook endpoints, their deliveries and the agents' escalation rules.

Endpoints are admin resources. The signing secret (``whsec_…``) is shown in the answer to a create or a
rotation only; it is stored in Redis, as the workers need it to sign. ``whe_settings`` stands for
``ESCALATION_WEBHOOK_URL`` when it is set: listed, readable, with deliveries, redeliveries and
recoveries like any endpoint, but changed only through the settings.

A recovery re-sends, from the event log, every event since a time that the endpoint subscribes to
(``session.escalated`` included: the escalations of the logged updates), at most ``RECOVER_MAX`` per
call, examining at most ``RECOVER_STEPS`` pages of the log; the answer's ``page_key`` continues it.
What the log no longer holds (``EVENTS_RETENTION``) cannot be recovered: ``oldest_available`` says
where it starts. ``since`` must be after the epoch and not in the future (up to ``SINCE_SKEW_MS`` ahead
of the API's clock is taken, for clients whose clock is a little fast).
"""

from __future__ import annotations

import base64
import re
import secrets
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

import aiohttp
import orjson

from agent_sessions.errors import (
    AgentNotFound,
    CursorExpired,
    DeliveryNotFound,
    EventGone,
    InvalidRequest,
    LimitReached,
    ManagedBySettings,
    WebhookEndpointNotFound,
)
from agent_sessions.escalations import rules
from agent_sessions.events.feed import decode_cursor, encode_cursor
from agent_sessions.events.model import ESCALATED, UPDATED, event_from_entry
from agent_sessions.events.store import EventLog
from agent_sessions.ids import new_id
from agent_sessions.sessions.models import MetadataLimits, encode_metadata
from agent_sessions.sessions.representations import event_time
from agent_sessions.webhooks import model as ep
from agent_sessions.webhooks import signing as webhooks
from agent_sessions.webhooks.destinations import check_destination
from agent_sessions.webhooks.store import Webhooks

ENDPOINT_ID_RE = re.compile(ep.ENDPOINT_ID_PATTERN)
MESSAGE_ID_PATTERN = "^(evt|esc)_[A-Za-z0-9_-]{1,80}$"
MESSAGE_ID_RE = re.compile(MESSAGE_ID_PATTERN)
MAX_SECRETS = 3  # a new one and the previous ones in their grace period
RECOVER_MAX = 1_000  # events of the log one recovery call takes at most (with their escalations)
RECOVER_PAGE = 500
RECOVER_STEPS = 10  # event log pages one call reads at most (each examines up to EVENTS_SCAN_MAX entries)
PAGE_KEY_RE = re.compile(r"^[0-9]{1,16}$")
# A recovery's `since` may be this far ahead of the API's clock (a client's clock a little fast), no more.
SINCE_SKEW_MS = 5 * 60 * 1000


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


def check_endpoint_id(endpoint: str) -> None:
    if not ENDPOINT_ID_RE.fullmatch(endpoint):
        raise InvalidRequest.for_fields({"endpoint_id": f"must match {ep.ENDPOINT_ID_PATTERN}"})


def parse_time(value: str, field: str) -> int:
    """An RFC 3339 time with a zone -> ms since the epoch."""
    try:
        moment = datetime.fromisoformat(value.upper())  # RFC 3339 allows a lowercase t and z
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise InvalidRequest.for_fields({field: "must be an RFC 3339 time with a zone, e.g. 2026-12-03T10:00:00Z"})
    return int(moment.timestamp() * 1000)


@dataclass(frozen=True)
class WebhookServices:
    webhooks: Webhooks
    events: EventLog
    limits: MetadataLimits
    default_rules: rules.Rules
    allow_private: bool = False
    settings_url: str | None = None  # ESCALATION_WEBHOOK_URL
    settings_key: bytes | None = None  # ESCALATION_WEBHOOK_SECRET's
    timeout: float = 10.0  # WEBHOOK_TIMEOUT: how long a test attempt may take

    # -- endpoints ----------------------------------------------------------------------------------

    async def create(self, body: dict[str, Any]) -> ep.WebhookEndpointWithSecret:
        await check_destination(body["url"], self.allow_private)
        endpoint, secret = "whe_" + secrets.token_hex(12), new_secret()
        fields = self._fields(body)
        fields["secrets"] = orjson.dumps([{"secret": secret, "expires_ms": "0"}]).decode()
        fields.setdefault("description", "")
        fields.setdefault("agent_keys", "null")
        fields.setdefault("enabled", "1")
        fields.setdefault("metadata", "{}")
        outcome, stored = await self.webhooks.create(endpoint, fields)
        if outcome == "full":
            raise LimitReached(
                f"there are WEBHOOK_ENDPOINTS_MAX ({self.webhooks.bounds.endpoints_max}) endpoints already"
            )
        return {**ep.resource(endpoint, stored), "secret": secret}

    async def list_endpoints(self) -> ep.WebhookEndpointList:
        found = [ep.resource(endpoint, fields) for endpoint, fields in await self.webhooks.all()]
        if self.settings_url is not None:
            found.insert(0, ep.settings_resource(self.settings_url))
        return {"webhook_endpoints": found}

    async def get(self, endpoint: str) -> ep.WebhookEndpoint:
        if endpoint == ep.SETTINGS_ENDPOINT and self.settings_url is not None:
            return ep.settings_resource(self.settings_url)
        return ep.resource(endpoint, await self._stored(endpoint))

    async def update(self, endpoint: str, body: dict[str, Any]) -> ep.WebhookEndpoint:
        self._writable(endpoint)
        if "url" in body:
            await check_destination(body["url"], self.allow_private)
        changed = (
            await self.webhooks.update(endpoint, self._fields(body)) if body else await self.webhooks.get(endpoint)
        )
        if changed is None:
            raise WebhookEndpointNotFound()
        return ep.resource(endpoint, changed)

    async def delete(self, endpoint: str) -> None:
        self._writable(endpoint)
        if not await self.webhooks.delete(endpoint):
            raise WebhookEndpointNotFound()

    async def rotate(self, endpoint: str, body: dict[str, Any]) -> ep.WebhookEndpointWithSecret:
        self._writable(endpoint)
        grace_ms = body.get("grace_seconds", ep.DEFAULT_GRACE_SECONDS) * 1000
        secret = new_secret()
        stored = await self.webhooks.rotate(endpoint, secret, grace_ms, MAX_SECRETS)
        if stored is None:
            raise WebhookEndpointNotFound()
        return {**ep.resource(endpoint, stored), "secret": secret}

    # -- deliveries ---------------------------------------------------------------------------------

    async def deliveries(
        self, endpoint: str, status: ep.DeliveryStatus | None, page_key: str | None, limit: int
    ) -> ep.DeliveryList:
        await self.get(endpoint)
        if page_key is not None and not PAGE_KEY_RE.fullmatch(page_key):
            raise InvalidRequest.for_fields({"page_key": "not a page key this API returns"})
        rows, next_key = await self.webhooks.page(endpoint, status, page_key or "", limit)
        return {"deliveries": [ep.delivery(row) for row in rows], "metadata": {"page_key": next_key or None}}

    async def redeliver(self, endpoint: str, message: str) -> ep.Delivery:
        """Queue one message again, attempts from zero; a delivered one is rebuilt from the event log
        (or, for an escalation, from its record)."""
        await self.get(endpoint)
        row = await self.webhooks.row(endpoint, message) if MESSAGE_ID_RE.fullmatch(message) else None
        if row is None:
            raise DeliveryNotFound()
        body = row["body"].encode() if row["body"] is not None else await self._rebuild(message)
        outcome = (await self.webhooks.enqueue(endpoint, [ep.Message(message, row["type"], body)], force=True))[0]
        if outcome == "full":
            raise LimitReached(
                "the endpoint has WEBHOOK_BACKLOG_MAX undelivered messages; redeliver once it catches up"
            )
        if outcome == "no_endpoint":
            raise WebhookEndpointNotFound()
        rows = await self.webhooks.row(endpoint, message)
        assert rows is not None
        return ep.delivery({**rows, "id": message})

    async def recover(self, endpoint: str, body: dict[str, Any]) -> ep.Recovered:
        since_ms = parse_time(body["since"], "since")
        if since_ms <= 0:
            raise InvalidRequest.for_fields({"since": "must be after 1970-01-01T00:00:00Z"})
        if since_ms > time.time() * 1000 + SINCE_SKEW_MS:
            raise InvalidRequest.for_fields({"since": "must not be in the future"})
        sub = await self._subscription(endpoint)
        if "page_key" in body:
            try:
                after = decode_cursor(body["page_key"])
            except InvalidRequest:
                raise InvalidRequest.for_fields({"page_key": "not a page key this API returned"}) from None
        else:
            after = f"{since_ms - 1}-18446744073709551615"  # just before the first entry at since_ms
        log_types = set(sub.event_types) - {ESCALATED}
        if ESCALATED in sub.event_types:
            log_types.add(UPDATED)
        agents = tuple(sorted(sub.agents)) if sub.agents is not None else ()
        queued = refused = taken = steps = 0
        more = True
        while more and taken < RECOVER_MAX and steps < RECOVER_STEPS:
            steps += 1
            try:
                limit = min(RECOVER_PAGE, RECOVER_MAX - taken)
                page = await self.events.page(after, limit, agents, "", tuple(sorted(log_types)))
            except CursorExpired:
                after = ""  # what `since` asked for was trimmed: from the oldest retained
                continue
            taken += len(page.entries)
            messages = await self._messages(sub, [event_from_entry(fields) for _, fields in page.entries])
            for outcome in await self.webhooks.enqueue(endpoint, messages, force=True):
                queued += outcome == "queued"
                refused += outcome == "full"
            after, more = page.position, page.has_more
        oldest = await self.events.oldest()
        return {
            "queued": queued,
            "refused": refused,
            "oldest_available": None if oldest is None else event_time(oldest),
            "page_key": encode_cursor(after) if more else None,
        }

    async def attempts(self, endpoint: str, message: str) -> ep.Attempts:
        """Every attempt of the endpoint's delivery of a message (its newest ``ATTEMPTS_KEPT``), oldest
        first; redeliveries add to them."""
        await self.get(endpoint)
        found = await self.webhooks.attempts(endpoint, message) if MESSAGE_ID_RE.fullmatch(message) else None
        if found is None:
            raise DeliveryNotFound()
        return {"attempts": [ep.attempt(a) for a in found]}

    async def test(self, endpoint: str) -> ep.TestOutcome:
        """Send a signed ``webhook.test`` message to the endpoint now (from this process, through the same
        destination checks as a delivery) and answer how it went. Nothing is queued or recorded: it is
        not an event, and a receiver that verifies signatures may ignore its type."""
        if endpoint == ep.SETTINGS_ENDPOINT and self.settings_url is not None and self.settings_key is not None:
            url, keys, trusted = self.settings_url, [self.settings_key], True
        else:
            stored = await self._stored(endpoint)
            url, keys, trusted = stored["url"], ep.signing_keys(stored), self.allow_private
        message_id = new_id("msg")
        body = orjson.dumps(
            {
                "type": ep.TEST_TYPE,
                "timestamp": event_time(str(int(time.time() * 1000))),
                "data": {"endpoint_id": endpoint, "message": "a test message from agent-sessions"},
            }
        )
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        async with aiohttp.ClientSession(timeout=timeout, cookie_jar=aiohttp.DummyCookieJar()) as session:
            went = await webhooks.attempt(session, url, keys, message_id, body, trusted)
        return {
            "id": message_id,
            "status_code": went.status_code,
            "error": went.error or None,
            "duration_ms": went.duration_ms,
        }

    async def dead_letters(self) -> list[tuple[str, ep.Delivery]]:
        """Every endpoint's dead letters (the CLI's view)."""
        found = []
        ids = [e["id"] for e in (await self.list_endpoints())["webhook_endpoints"]]
        for endpoint in ids:
            before = ""
            while True:
                rows, before = await self.webhooks.page(endpoint, "dead", before, 100)
                found += [(endpoint, ep.delivery(row)) for row in rows]
                if not before:
                    break
        return found

    # -- escalation rules ---------------------------------------------------------------------------

    async def get_rules(self, agent: str) -> rules.AgentRules:
        in_use, source = await self._rules_in_use(agent)
        return {"agent_key": agent, "rules": in_use.body(), "source": source}

    async def put_rules(self, agent: str, body: dict[str, Any]) -> rules.AgentRules:
        made = rules.from_body(body["rules"])
        if not await self.webhooks.put_rules(agent, made.encode()):
            raise AgentNotFound()
        return {"agent_key": agent, "rules": made.body(), "source": "agent"}

    async def test_rules(self, agent: str, body: dict[str, Any]) -> rules.Fired:
        for side in ("old", "new"):  # metadata as a PATCH could store it (finite numbers, the limits)
            try:
                encode_metadata(body[side], self.limits)
            except InvalidRequest as exc:
                fields = {side + path.removeprefix("metadata"): why for path, why in exc.field_errors.items()}
                raise InvalidRequest.for_fields(fields) from None
        in_use, _ = await self._rules_in_use(agent)
        return {"fired": in_use.fired(body["old"], body["new"])}

    async def _rules_in_use(self, agent: str) -> tuple[rules.Rules, Literal["agent", "settings"]]:
        """The agent's own rules, or the settings' when it has none (404 for no such agent)."""
        stored = await self.webhooks.rules(agent)
        if stored is None:
            await self._agent_exists(agent)
            return self.default_rules, "settings"
        return rules.decode(stored), "agent"

    # -- helpers ------------------------------------------------------------------------------------

    def _fields(self, body: dict[str, Any]) -> dict[str, str]:
        fields: dict[str, str] = {}
        for name in ("url", "description"):
            if name in body:
                fields[name] = body[name]
        if "event_types" in body:
            fields["event_types"] = orjson.dumps(sorted(set(body["event_types"]))).decode()
        if "agent_keys" in body:
            agents = body["agent_keys"]
            fields["agent_keys"] = orjson.dumps(None if agents is None else sorted(set(agents))).decode()
        if "enabled" in body:
            fields["enabled"] = "1" if body["enabled"] else "0"
        if "metadata" in body:
            fields["metadata"] = encode_metadata(body["metadata"], self.limits).decode()
        for name in ep.RETRY_FIELDS:
            if name in body:
                fields[name] = "" if body[name] is None else str(body[name])
        return fields

    def _writable(self, endpoint: str) -> None:
        if endpoint == ep.SETTINGS_ENDPOINT:
            raise ManagedBySettings()

    async def _stored(self, endpoint: str) -> ep.Fields:
        stored = await self.webhooks.get(endpoint)
        if stored is None:
            raise WebhookEndpointNotFound()
        return stored

    async def _subscription(self, endpoint: str) -> ep.Subscription:
        if endpoint == ep.SETTINGS_ENDPOINT and self.settings_url is not None:
            return ep.SETTINGS_SUBSCRIPTION
        return ep.subscription(endpoint, await self._stored(endpoint))

    async def _messages(self, sub: ep.Subscription, events: list[dict[str, Any]]) -> list[ep.Message]:
        """The messages these logged events make for this endpoint (escalations from their records)."""
        messages = [ep.event_message(e) for e in events if sub.wants(e["type"], e["agent_key"])]
        if ESCALATED in sub.event_types:
            updates = [e for e in events if e["type"] == UPDATED and sub.wants(ESCALATED, e["agent_key"])]
            bodies = await self.webhooks.escalation_bodies([(e["agent_key"], e["event_id"]) for e in updates])
            messages += [ep.escalation_message(e["event_id"], b) for e, b in zip(updates, bodies, strict=True) if b]
        return messages

    async def _rebuild(self, message: str) -> bytes:
        if message.startswith("esc_"):
            (body,) = await self.webhooks.escalation_bodies([(None, "evt_" + message.removeprefix("esc_"))])
        else:
            entry = await self.events.get(message)
            body = None if entry is None else ep.event_message(event_from_entry(entry[1])).body
        if body is None:
            raise EventGone()
        return body

    async def _agent_exists(self, agent: str) -> None:
        if not await self.webhooks.agent_exists(agent):
            raise AgentNotFound()
