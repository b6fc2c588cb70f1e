"""The suite passes on any date: the time-sensitive modules, run again with the store's clock two years
ahead (``support.clock``: the tests' Redis under libfaketime; every time the service keeps comes from
Redis ``TIME``). A fixture or a test that holds a fixed date, or mixes the test process's clock with
the store's, fails here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.api import IN_CI
from tests.support.clock import libfaketime

ROOT = Path(__file__).resolve().parents[2]
TIME_SENSITIVE = [
    "tests/integration/test_migrate.py",  # a store dumped on one day, with sessions that expire
    "tests/integration/test_expiry.py",
    "tests/integration/test_event_log.py",  # retention
    "tests/integration/test_delivery_scripts.py",  # backoff, leases, secrets' grace
    "tests/integration/test_webhook_endpoints.py",  # recover since
    "tests/integration/test_beyond_seed.py",  # Idempotency-Key records' time to live
]


@pytest.mark.parametrize("offset", ["+730d"])
def test_the_time_sensitive_tests_pass_with_the_clock_years_ahead(offset: str) -> None:
    if libfaketime() is None:
        if IN_CI:
            pytest.fail("libfaketime is not installed (apt-get install faketime; required in CI)")
        pytest.skip("libfaketime is not installed: apt-get install faketime")
    environment = {**os.environ, "AGENT_SESSIONS_TEST_CLOCK": offset}
    # One Redis, not the cluster: the cluster's nodes keep the real clock.
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-k", "not cluster", *TIME_SENSITIVE]
    run = subprocess.run(args, cwd=ROOT, env=environment, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
