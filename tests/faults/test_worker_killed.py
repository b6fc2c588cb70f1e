"""The whole `agent-sessions worker` (relay and Dramatiq processes) killed with SIGKILL mid-stream:
after a new worker starts, every event is processed and the report equals a recount."""

from __future__ import annotations

import pytest

from tests.faults.helpers import AGENT, FAST_REDELIVERY, stream_with_fault
from tests.support.processes import env, kill_group, working
from tests.support.recount import assert_report_equals_recount

pytestmark = pytest.mark.e2e


def test_worker_killed_mid_stream_loses_nothing(
    api: tuple[str, dict[str, str]], redis_url: str, broker_url: str
) -> None:
    base, headers = api
    settings = env(REDIS_URL=redis_url, BROKER_URL=broker_url, **FAST_REDELIVERY)
    with working(settings) as first:
        # SIGKILL, mid-stream, no warning
        stream_with_fault(base, headers, sessions=10, patches=600, fault=lambda: kill_group(first))
    with working(settings):
        assert_report_equals_recount(base, headers, redis_url, AGENT)
