"""/metrics and the logs: what an operator sees. Metrics are served on their own listener (here, one in
this process, so it sees the requests of the in-process app), never on the API's port."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.logs import JsonFormatter
from agent_sessions.metrics import serve_metrics
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import free_port
from tests.support import stream
from tests.support.api import SEED_AGENT, SEED_SESSION, MakeKey

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
PATCH_ROUTE = "/v2/agents/{agent_key}/sessions/{session_key}"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? ([0-9.e+-]+)", line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return 0.0


Scrape = Callable[[], str]


@pytest.fixture
def scrape(redis_url: str) -> Scrape:
    port = free_port()
    serve_metrics("127.0.0.1", port, sync_client(redis_url), None)
    return lambda: httpx.get(f"http://127.0.0.1:{port}/metrics").text


def test_metrics_are_not_on_the_api_port_and_known_labels_start_at_zero(client: TestClient, scrape: Scrape) -> None:
    assert client.get("/metrics").status_code == 404
    text = scrape()
    for reason in ("key", "address"):
        assert f'agent_sessions_rate_limited_total{{reason="{reason}"}}' in text


def test_http_metrics_count_requests_by_route_and_status(
    client: TestClient, admin: dict[str, str], seeded: Any, scrape: Scrape
) -> None:
    before = scrape()
    client.patch(URL, json={"description": "x"}, headers=admin)
    client.patch(URL, json={"bad": 1}, headers=admin)
    after = scrape()
    name = "agent_sessions_http_requests_total"
    for status, n in (("200", 1), ("400", 1)):
        labels = {"method": "PATCH", "route": PATCH_ROUTE, "status": status}
        assert sample(after, name, **labels) - sample(before, name, **labels) == n
    hist = "agent_sessions_http_request_duration_seconds_count"
    assert (
        sample(after, hist, method="PATCH", route=PATCH_ROUTE) - sample(before, hist, method="PATCH", route=PATCH_ROUTE)
        == 2
    )


def test_rate_limited_requests_are_counted(client: TestClient, make_key: MakeKey, seeded: Any, scrape: Scrape) -> None:
    key = {"x-api-key": make_key("viewer", rate=0.01, burst=1)}
    before = sample(scrape(), "agent_sessions_rate_limited_total", reason="key")
    client.get(URL, headers=key)
    assert client.get(URL, headers=key).status_code == 429
    assert sample(scrape(), "agent_sessions_rate_limited_total", reason="key") == before + 1


def test_pipeline_metrics_come_from_redis(
    client: TestClient, admin: dict[str, str], seeded: Any, sync_redis: redis.Redis, scrape: Scrape
) -> None:
    sync_redis.hset(
        "as:metrics", mapping={"report_events:processed": 7, "report_events:failed": 1, "webhooks:delivered": 3}
    )
    sync_redis.zadd("as:deadletters", {"evt_1": 1})
    text = scrape()
    assert sample(text, "agent_sessions_outbox_backlog") == stream.outbox_length(sync_redis) == 1  # the seed's create
    assert sample(text, "agent_sessions_relay_lag_seconds") >= 0
    assert sample(text, "agent_sessions_events_total", actor="report_events", outcome="processed") == 7
    assert sample(text, "agent_sessions_events_total", actor="report_events", outcome="failed") == 1
    assert sample(text, "agent_sessions_webhooks_total", outcome="delivered") == 3
    assert sample(text, "agent_sessions_dead_letters") == 1


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def access_records() -> Any:
    handler, logger = Records(), logging.getLogger("agent_sessions.access")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield handler.records
    logger.removeHandler(handler)


def test_one_json_access_line_per_request_without_secrets(
    client: TestClient, admin: dict[str, str], seeded: Any, access_records: list[logging.LogRecord]
) -> None:
    access_records.clear()
    response = client.patch(URL, json={"description": "x"}, headers={**admin, "x-request-id": "trace-1"})
    (record,) = access_records
    line = json.loads(JsonFormatter().format(record))
    assert line["request_id"] == "trace-1" and line["status"] == 200 and line["route"] == PATCH_ROUTE
    assert line["method"] == "PATCH" and line["key_id"].startswith("kid_") and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["ts"].endswith("Z")
    assert admin["x-api-key"] not in json.dumps(line) and response.status_code == 200


def test_unauthenticated_and_unmatched_requests_are_logged_too(
    client: TestClient, access_records: list[logging.LogRecord]
) -> None:
    access_records.clear()
    client.get(URL, headers={"x-api-key": "ask_" + "x" * 32})
    client.get("/nowhere")
    lines = [json.loads(JsonFormatter().format(r)) for r in access_records]
    assert [(line["status"], line["key_id"]) for line in lines] == [(401, None), (404, None)]
    assert lines[1]["route"] == "unmatched"
    assert "ask_" not in json.dumps(lines)
