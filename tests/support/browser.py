"""A real browser for the tests: Debian's ``chromium`` driven by Playwright (``executable_path``; its own
browser download is not needed). Without Chromium a browser test skips on a laptop and fails under
``CI=true`` (``.ci/run`` installs it)."""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
from collections.abc import Iterator
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import IN_CI

# What the machines this runs on need: no sandbox as root, no GPU, and none of Chromium's own traffic to
# the internet (a closed network refuses it, many connections at a time).
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
ARTIFACTS = Path(os.environ.get("BROWSER_ARTIFACTS", Path(__file__).resolve().parents[2] / "test-artifacts"))


def chromium() -> str:
    """The Chromium to drive, or skip (fail under CI)."""
    found = os.environ.get("CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    if found:
        return found
    if IN_CI:
        pytest.fail("Chromium is not installed (apt-get install chromium; .ci/run installs it)")
    pytest.skip("Chromium is not installed: apt-get install chromium")


@contextlib.contextmanager
def browser() -> Iterator[Any]:
    """A headless Chromium (a Playwright ``Browser``) for the block."""
    executable = chromium()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=executable, args=ARGS)
        try:
            yield launched
        finally:
            launched.close()


@contextlib.contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """``directory`` served over HTTP on 127.0.0.1 (another origin than the API's); yields its base URL."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Quiet, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def screenshot(page: Any, name: str) -> Path:
    """A screenshot of ``page`` kept as a test artifact (``test-artifacts/``), to look at."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
