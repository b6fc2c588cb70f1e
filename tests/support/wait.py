"""``eventually``: the one way tests wait for something that happens in another process or thread."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def eventually(check: Callable[[], T], message: str = "condition not reached", timeout: float = 30.0) -> T:
    """Call ``check`` until it returns something truthy (returned), failing with ``message`` after
    ``timeout`` seconds. Polls every 50 ms: a wait never lasts much longer than what it waits for."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"{message} (waited {timeout:g} s)")
        time.sleep(0.05)
