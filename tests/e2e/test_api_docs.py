"""``/docs``, the interactive API reference, in a real browser (headless Chromium) against a real
server: every operation of ``/openapi.json`` is rendered, from the wheel's own files (no request leaves
the server's origin: it works offline), and a user can paste a key, try a call and read its answer."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from playwright.sync_api import Locator, Page, expect

from tests.support.api import MakeKey
from tests.support.browser import browser, screenshot
from tests.support.processes import env, serve

pytestmark = pytest.mark.e2e


def operations(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, methods in spec["paths"].items() for method in methods]


def test_docs_render_every_operation_offline_and_try_a_call(redis_url: str, make_key: MakeKey) -> None:
    key = make_key("viewer")
    with serve(env(REDIS_URL=redis_url)) as base:
        for path in ("/docs", "/docs/docs.js", "/docs/swagger-ui-bundle.js", "/docs/swagger-ui.css"):
            answer = httpx.get(f"{base}{path}")
            assert answer.status_code == 200, path
            policy = answer.headers["content-security-policy"]
            assert "script-src 'self';" in policy and "connect-src 'self'" in policy, path
        spec = httpx.get(f"{base}/openapi.json").json()
        wanted = operations(spec)
        assert len(wanted) > 30

        with browser() as chromium:
            page = chromium.new_page(viewport={"width": 1280, "height": 900})
            elsewhere: list[str] = []
            errors: list[str] = []
            page.on("request", lambda r: None if r.url.startswith((base, "data:")) else elsewhere.append(r.url))
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.goto(f"{base}/docs")

            blocks = page.locator(".opblock")
            expect(blocks.first).to_be_visible(timeout=20_000)
            expect(blocks).to_have_count(len(wanted))
            shown = [
                (block.locator(".opblock-summary-method").inner_text().strip(), summary_path(block))
                for block in blocks.all()
            ]
            assert sorted(shown) == sorted(wanted)
            screenshot(page, "api-docs")

            authorize(page, key)
            assert try_it(page, "list_agents") == "200"
            screenshot(page, "api-docs-tried")
            assert elsewhere == [] and errors == []


def summary_path(block: Locator) -> str:
    return str(block.locator(".opblock-summary-path").get_attribute("data-path"))


def authorize(page: Page, key: str) -> None:
    page.get_by_role("button", name="Authorize").first.click()
    dialog = page.locator(".dialog-ux")
    dialog.locator("input").first.fill(key)  # the first scheme: x-api-key
    dialog.get_by_role("button", name="Apply credentials").first.click()
    expect(dialog.get_by_role("button", name="Remove authorization").first).to_be_visible()  # authorized
    dialog.get_by_role("button", name="Close").first.click()


def try_it(page: Page, operation: str) -> str:
    """Open an operation, "Try it out", "Execute": the status of the live answer."""
    block = page.locator(f"#operations-default-{operation}")
    block.locator(".opblock-summary").click()
    block.get_by_role("button", name="Try it out").click()
    block.get_by_role("button", name="Execute").click()
    live = block.locator(".live-responses-table .response .response-col_status")
    expect(live.first).to_be_visible(timeout=10_000)
    return live.first.inner_text().strip()
