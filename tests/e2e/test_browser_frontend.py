"""A chat frontend in a real browser (headless Chromium, Playwright): a page served from another origin
holds a client token its backend (the test) minted, PATCHes its session through fetch (CORS, the
exposed ETag), follows the session with EventSource (the token in the URL), and sees both its own
change and one made elsewhere; a stale If-Match's 412 reaches the page."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest

from tests.support.browser import browser, screenshot, static_site
from tests.support.processes import env, serve, working

pytestmark = pytest.mark.e2e
PAGES = Path(__file__).parent / "pages"
AGENT, SESSION = "agt_web", "ase_chat_1"


def test_a_page_on_another_origin_patches_and_follows_its_session_with_a_client_token(
    redis_url: str, make_key: Any
) -> None:
    admin = {"x-api-key": make_key("admin", rate=1e6, burst=10**6)}
    with static_site(PAGES) as site:
        settings = env(
            REDIS_URL=redis_url,
            CORS_ALLOW_ORIGINS=site,
            CLIENT_TOKENS="true",
            CLIENT_TOKEN_SECRET="browser-test-secret-" + "x" * 20,
            RELAY_LINGER_MS="5",
        )
        with (
            serve(settings) as api,
            working(settings, "--relay-only"),
            httpx.Client(base_url=api, headers=admin) as backend,
        ):
            assert backend.post("/v2/agents", json={"key": AGENT, "name": "web"}).status_code == 201
            assert backend.post(f"/v2/agents/{AGENT}/sessions", json={"key": SESSION}).status_code == 201
            minted = backend.post(
                "/v2/client_tokens", json={"agent_key": AGENT, "session_key": SESSION, "role": "editor"}
            ).json()
            fragment = urlencode({"api": api, "token": minted["token"], "agent": AGENT, "session": SESSION})
            with browser() as chromium:
                page = chromium.new_page()
                failures: list[str] = []
                page.on("console", lambda m: failures.append(m.text) if m.type == "error" else None)
                page.goto(f"{site}/frontend.html#{fragment}")
                page.wait_for_function("document.getElementById('feed').textContent === 'live'")

                own = page.evaluate("patch('from the page')")  # page -> API
                assert own["status"] == 200 and own["etag"] == '"2"' and own["requestId"]
                assert backend.get(f"/v2/agents/{AGENT}/sessions/{SESSION}").json()["description"] == "from the page"
                elsewhere = backend.patch(
                    f"/v2/agents/{AGENT}/sessions/{SESSION}", json={"description": "from an agent"}
                )
                assert elsewhere.status_code == 200  # API -> page, through the feed
                page.wait_for_function("window.received.length >= 2", timeout=20_000)
                received = page.evaluate("window.received")
                assert [(e["version"], e["description"]) for e in received] == [
                    (2, "from the page"),
                    (3, "from an agent"),
                ]
                assert all(e["id"].startswith("c1.") for e in received)

                stale = page.evaluate("patch('too late', '\"2\"')")
                assert stale["status"] == 412 and stale["body"]["code"] == "precondition_failed"
                assert stale["etag"] == '"3"'  # the current version, exposed to the page
                screenshot(page, "frontend-page")
                # The browser reports every non-2xx fetch as a console error: the 412 was asked for.
                assert [f for f in failures if "412" not in f] == [], failures
