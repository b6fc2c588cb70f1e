"""The operator's console (``/console``) in a real browser (headless Chromium, Playwright), against a real
server and worker: an operator signs in with an API key, filters an agent's sessions, watches a session
change live when another client PATCHes it, follows the live event feed, finds a webhook delivery that
died, reads its attempts, redelivers it and sees the new attempt, and edits and dry-runs escalation rules.

Throughout, what an attacker stored in a session's metadata is shown as text and never runs, no request
leaves the API's origin, the key never appears in a URL, and the browser reports no error (the page runs
under its Content-Security-Policy, which would refuse inline script or style)."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import httpx
import pytest
from playwright.sync_api import ConsoleMessage, Dialog, Page, Request, expect

from tests.support.api import MakeKey
from tests.support.browser import browser, screenshot
from tests.support.processes import env, serve, working
from tests.support.receiver import Receiver
from tests.support.wait import eventually

pytestmark = pytest.mark.e2e
AGENT, URGENT, CALM = "agt_console", "ase_urgent_1", "ase_calm_1"
XSS = "<img src=x onerror=alert(1)>"
# Events cross the worker's relay, a busy machine may take seconds: the waits for them are longer than
# expect()'s 5 s.
WAIT_MS = 20_000


def seed(api: httpx.Client, receiver: Receiver) -> str:
    """An agent, two sessions (the urgent one with an attacker's metadata), and an endpoint whose first
    delivery fails: dead at once (WEBHOOK_MAX_RETRIES=0). Returns the endpoint's id."""
    assert api.post("/v2/agents", json={"key": AGENT, "name": "Console", "description": "seeded"}).status_code == 201
    receiver.fail_next(1)
    created = api.post(
        "/v2/webhook_endpoints",
        json={"url": receiver.url, "event_types": ["session.created"], "agent_keys": [AGENT]},
    )
    assert created.status_code == 201, created.text
    endpoint: str = created.json()["id"]
    for key, metadata in ((URGENT, {"priority": "urgent", "note": XSS}), (CALM, {"priority": "low"})):
        made = api.post(f"/v2/agents/{AGENT}/sessions", json={"key": key, "name": key, "metadata": metadata})
        assert made.status_code == 201, made.text

    def statuses() -> list[str]:
        found = api.get(f"/v2/webhook_endpoints/{endpoint}/deliveries").json()["deliveries"]
        return sorted(d["status"] for d in found)

    eventually(lambda: statuses() == ["dead", "delivered"], "the two deliveries did not settle", 20)
    return endpoint


class Watch:
    """What the page does that it must not: requests elsewhere, errors, dialogs."""

    def __init__(self, page: Page) -> None:
        self.urls: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        page.on("request", self.request)
        page.on("console", self.console)
        page.on("pageerror", lambda error: self.errors.append(f"pageerror: {error}"))
        page.on("dialog", self.dialog)

    def request(self, request: Request) -> None:
        self.urls.append(request.url)

    def console(self, message: ConsoleMessage) -> None:
        if message.type == "error":
            self.errors.append(f"{message.text} at {message.location.get('url')}")

    def dialog(self, dialog: Dialog) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def asked_for(self, page: Page, status: int) -> None:
        """Chromium reports every non-2xx answer on the console: take out the one the test asked for.
        (Playwright hands events over while it waits, so wait in the page, not with time.sleep.)"""
        for _ in range(50):
            found = [error for error in self.errors if f"status of {status}" in error]
            if found:
                self.errors.remove(found[0])
                return
            page.wait_for_timeout(100)
        raise AssertionError(f"no console error for the {status} asked for: {self.errors}")


def test_the_console_from_sign_in_to_a_redelivered_webhook(redis_url: str, make_key: MakeKey) -> None:
    key = make_key("admin", rate=1e6, burst=10**6)
    settings = env(
        REDIS_URL=redis_url,
        CLIENT_TOKENS="true",
        CLIENT_TOKEN_SECRET="console-test-secret-" + "x" * 24,
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="true",
        WEBHOOK_MAX_RETRIES="0",
        RELAY_LINGER_MS="5",
    )
    with (
        Receiver() as receiver,
        serve(settings) as base,
        working(settings),
        httpx.Client(base_url=base, headers={"x-api-key": key}) as api,
    ):
        endpoint = seed(api, receiver)
        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1366, "height": 860})
            page.set_default_timeout(WAIT_MS)
            watch = Watch(page)

            sign_in(page, watch, base, key)
            sessions(page)
            live_session(page, api)
            events(page, api)
            webhooks(page, endpoint, receiver.url)
            rules(page, watch)

            page.get_by_role("button", name="Sign out").click()
            expect(page.get_by_label("API key")).to_be_visible()
            assert page.evaluate("sessionStorage.length") == 0

        assert watch.dialogs == []
        assert watch.errors == [], watch.errors
        origin = urlsplit(base)
        assert watch.urls, "no request recorded"
        for url in watch.urls:
            where = urlsplit(url)
            assert (where.scheme, where.netloc) == (origin.scheme, origin.netloc) or where.scheme == "data", url
            assert key not in url


def sign_in(page: Page, watch: Watch, base: str, key: str) -> None:
    page.goto(f"{base}/console")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    screenshot(page, "console-sign-in")
    page.get_by_label("API key").fill("ask_not_a_key")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_contain_text("unauthorized")  # the 401, as text
    watch.asked_for(page, 401)
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Agents", exact=True)).to_be_visible()
    expect(page.get_by_role("link", name=AGENT, exact=True)).to_be_visible()
    screenshot(page, "console-agents")


def sessions(page: Page) -> None:
    page.get_by_role("link", name=AGENT, exact=True).click()
    expect(page.get_by_role("heading", name="Sessions")).to_be_visible()
    links = page.locator("table.sessions tbody a")
    expect(links).to_have_text([CALM, URGENT])
    expect(page.locator(".count")).to_have_text("2 sessions")
    page.get_by_label("Filter", exact=True).fill("priority = 'urgent'")
    page.get_by_label("Sort", exact=True).select_option("-created_at")
    page.get_by_role("button", name="Apply").click()
    expect(links).to_have_text([URGENT])
    expect(page.locator(".count")).to_have_text("1 session matches")
    assert "metadata_filter=" in page.url  # the filter survives a reload; the key is never there
    expect(page.locator("table.sessions")).to_contain_text(XSS)
    screenshot(page, "console-sessions-filtered")


def live_session(page: Page, api: httpx.Client) -> None:
    page.get_by_role("link", name=URGENT, exact=True).click()
    expect(page.get_by_role("heading", name=f"Session {URGENT}")).to_be_visible()
    expect(page.locator("pre.json")).to_contain_text(XSS)
    expect(page.locator(".live-status")).to_have_text("Live", timeout=WAIT_MS)

    changed = api.patch(f"/v2/agents/{AGENT}/sessions/{URGENT}", json={"description": "changed elsewhere"})
    assert changed.status_code == 200, changed.text
    expect(page.locator("dl.fields")).to_contain_text("changed elsewhere", timeout=WAIT_MS)  # no reload
    expect(page.locator("xpath=//dt[.='Version']/following-sibling::dd[1]")).to_have_text("2")
    expect(page.locator("table.events tbody tr").first).to_contain_text("session.updated")
    expect(page.locator("table.history tbody tr")).to_have_count(2, timeout=WAIT_MS)  # the history grew too
    # Shown, never parsed: no element came out of the metadata, and no dialog opened.
    assert page.locator("main img").count() == 0
    screenshot(page, "console-session")


def events(page: Page, api: httpx.Client) -> None:
    page.get_by_role("link", name="Events", exact=True).click()
    expect(page.get_by_role("heading", name="Events", exact=True)).to_be_visible()
    page.get_by_label("Agent", exact=True).fill(AGENT)
    page.get_by_label("session.created").uncheck()
    page.get_by_role("button", name="Follow").click()
    expect(page.locator(".live-status")).to_have_text("Live", timeout=WAIT_MS)
    assert api.patch(f"/v2/agents/{AGENT}/sessions/{CALM}", json={"metadata": {"tier": 2}}).status_code == 200
    assert api.post(f"/v2/agents/{AGENT}/sessions", json={"key": "ase_new_1"}).status_code == 201  # not followed
    assert api.patch(f"/v2/agents/{AGENT}/sessions/{URGENT}", json={"enabled": False}).status_code == 200
    rows = page.locator("table.events tbody tr")
    expect(rows).to_have_count(2, timeout=WAIT_MS)
    expect(rows.nth(0)).to_contain_text(URGENT)  # newest first
    expect(rows.nth(1)).to_contain_text(CALM)
    expect(rows.nth(1)).to_contain_text("session.updated")
    screenshot(page, "console-events")


def webhooks(page: Page, endpoint: str, url: str) -> None:
    page.get_by_role("link", name="Webhook endpoints", exact=True).click()
    expect(page.get_by_role("heading", name="Webhook endpoints")).to_be_visible()
    page.get_by_label("URL", exact=True).fill(url)
    page.get_by_label("session.escalated").check()
    page.get_by_label("Agent keys (optional)").fill(AGENT)
    page.get_by_role("button", name="Create endpoint").click()
    secret = page.locator(".secret")
    expect(secret).to_contain_text("whsec_")
    expect(secret).to_contain_text("will not be shown again")
    expect(page.locator("table tbody tr")).to_have_count(2)
    screenshot(page, "console-webhook-endpoints")

    page.get_by_role("link", name=endpoint, exact=True).click()
    expect(page.get_by_role("heading", name=f"Webhook endpoint {endpoint}")).to_be_visible()
    expect(page.locator("xpath=//dt[.='Backoff (ms)']/following-sibling::dd[1]")).to_have_text("server default")
    page.get_by_label("Status", exact=True).select_option("dead")
    dead = page.locator("table.deliveries > tbody > tr:not(.detail)")
    expect(dead).to_have_count(1)
    expect(dead).to_contain_text("dead")

    dead.get_by_role("button", name="Attempts").click()
    attempts = page.locator("table.attempts-table tbody tr")
    expect(attempts).to_have_count(1)
    expect(attempts.nth(0)).to_contain_text("500")

    dead.get_by_role("button", name="Redeliver").click()
    expect(attempts).to_have_count(2, timeout=WAIT_MS)
    expect(attempts.nth(1).locator("td").nth(1)).to_have_text(re.compile(r"^2\d\d$"))
    expect(dead).to_contain_text("delivered")  # the row, updated in place

    page.get_by_role("button", name="Send test event").click()
    expect(page.locator(".outcome")).to_contain_text("Delivered: HTTP 2")
    page.get_by_role("button", name="Rotate secret").click()
    expect(page.locator(".secret")).to_contain_text("New signing secret")
    expect(page.locator(".secret-value")).to_have_text(re.compile(r"^whsec_"))
    screenshot(page, "console-webhook-endpoint-attempts")

    page.get_by_role("button", name="Recover", exact=True).click()  # since an hour ago
    expect(page.get_by_text(re.compile(r"^Queued 3, refused 0\."))).to_be_visible()  # the three creations
    page.get_by_role("button", name="Disable").click()
    expect(page.locator("xpath=//dt[.='Enabled']/following-sibling::dd[1]")).to_have_text("no")
    expect(page.get_by_role("button", name="Enable", exact=True)).to_be_visible()


def rules(page: Page, watch: Watch) -> None:
    page.get_by_role("link", name="Escalation rules", exact=True).click()
    expect(page.get_by_role("heading", name="Escalation rules", exact=True)).to_be_visible()
    page.get_by_label("Agent", exact=True).fill(AGENT)
    page.get_by_role("button", name="Load rules").click()
    editor = page.get_by_label("Rules (JSON)")
    expect(editor).to_have_value(re.compile("metadata.priority"))

    page.get_by_role("button", name="Dry run").click()  # the example: priority high -> urgent
    expect(page.locator(".outcome")).to_have_text("Fired: priority")

    editor.fill("[{")
    page.get_by_role("button", name="Save rules").click()
    expect(page.get_by_role("alert")).to_contain_text("not valid JSON")  # refused before any request

    editor.fill('[{"name": "tiers", "path": "tier", "changes": true}]')
    page.get_by_role("button", name="Save rules").click()
    expect(page.get_by_role("alert")).to_contain_text("invalid_request")  # the API's 400, as text
    expect(page.get_by_role("alert")).to_contain_text("rules.0.path")
    watch.asked_for(page, 400)

    editor.fill('[{"name": "tiers", "path": "metadata.tier", "changes": true}]')
    page.get_by_role("button", name="Save rules").click()
    expect(page.get_by_text("Saved.")).to_be_visible()
    expect(page.get_by_text("This agent has its own rules.")).to_be_visible()
    page.get_by_label("Old metadata (JSON)").fill('{"tier": 1}')
    page.get_by_label("New metadata (JSON)").fill('{"tier": 2}')
    page.get_by_role("button", name="Dry run").click()
    expect(page.locator(".outcome")).to_have_text("Fired: tiers")
    screenshot(page, "console-escalation-rules")


def test_without_client_tokens_the_live_feed_says_why(redis_url: str, make_key: MakeKey) -> None:
    """CLIENT_TOKENS off: the console still works, and its feeds show the API's reason as text. Its
    files are served with the security headers, and the page names them by absolute paths (nothing
    redirects ``/console`` to ``/console/``)."""
    key = make_key("admin", rate=1e6, burst=10**6)
    with serve(env(REDIS_URL=redis_url)) as base, httpx.Client(base_url=base, headers={"x-api-key": key}) as api:
        assert api.post("/v2/agents", json={"key": AGENT, "name": "Console"}).status_code == 201
        for path in ("/console", "/console/app.js", "/console/console.css"):
            answer = httpx.get(f"{base}{path}")
            assert answer.status_code == 200, path
            assert "script-src 'self'" in answer.headers["content-security-policy"]
            assert answer.headers["x-frame-options"] == "DENY"
        with browser() as chromium:
            page = chromium.new_page()
            page.set_default_timeout(WAIT_MS)
            watch = Watch(page)
            page.goto(f"{base}/console#/events?agent_key={AGENT}")
            page.get_by_label("API key").fill(key)
            page.get_by_role("button", name="Sign in").click()
            expect(page.get_by_role("alert")).to_contain_text("CLIENT_TOKENS")
            expect(page.locator(".live-status")).to_have_text("Not running")
            watch.asked_for(page, 403)
            assert watch.errors == [] and watch.dialogs == [], watch.errors
