"""/metrics and the logs: what an operator sees. Metrics are served on their own listener (here, one in
this process, so it sees the requests of the in-process app), never on the API's port."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import redis
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.metrics import serve_metrics
from agent_sessions.redis.client import sync_client
from agent_sessions.redis.server import free_port
from agent_sessions.web.access import AccessLog
from agent_sessions.web.app import create_app
from tests.support import stream
from tests.support.api import SEED_AGENT, SEED_SESSION, MakeKey
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
PATCH_ROUTE = "/v2/agents/{agent_key}/sessions/{session_key}"


def sample(text: str, name: str, **labels: str) -> float:
    """The value of one sample in Prometheus text format (0 when absent: a counter not counted yet)."""
    found = value(text, name, **labels)
    return 0.0 if found is None else found


def value(text: str, name: str, **labels: str) -> float | None:
    """The value of one sample in Prometheus text format (None when absent)."""
    for line in text.splitlines():
        if not line.startswith(name):
            continue
        m = re.fullmatch(rf"{re.escape(name)}(?:\{{(.*)\}})? ([0-9.e+-]+)", line)
        if not m:
            continue
        found = dict(re.findall(r'(\w+)="([^"]*)"', m.group(1) or ""))
        if all(found.get(k) == v for k, v in labels.items()):
            return float(m.group(2))
    return None


Scrape = Callable[[], str]


@pytest.fixture
def scrape(redis_url: str) -> Scrape:
    port = free_port()
    serve_metrics("127.0.0.1", port, sync_client(redis_url), KEYS, None)
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
    lag = value(text, "agent_sessions_relay_lag_seconds")
    assert lag is not None and lag >= 0  # there, and a duration
    assert sample(text, "agent_sessions_events_total", actor="report_events", outcome="processed") == 7
    assert sample(text, "agent_sessions_events_total", actor="report_events", outcome="failed") == 1
    assert sample(text, "agent_sessions_webhooks_total", outcome="delivered") == 3
    assert sample(text, "agent_sessions_dead_letters") == 1


@pytest.fixture
def logged(settings: Settings) -> Iterator[tuple[TestClient, Callable[[], list[dict[str, Any]]]]]:
    """The app with its access log written to a buffer: (client, the lines written so far)."""
    buffer = io.StringIO()
    with TestClient(create_app(settings, AccessLog("json", stream=buffer))) as client:
        yield client, lambda: [json.loads(line) for line in buffer.getvalue().splitlines()]


def test_one_json_access_line_per_request_without_secrets(
    logged: tuple[TestClient, Callable[[], list[dict[str, Any]]]], admin: dict[str, str]
) -> None:
    client, lines = logged
    assert client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=admin).status_code == 201
    assert (
        client.post(f"/v2/agents/{SEED_AGENT}/sessions", json={"key": SEED_SESSION}, headers=admin).status_code == 201
    )
    before = len(lines())
    response = client.patch(URL, json={"description": "x"}, headers={**admin, "x-request-id": "trace-1"})
    (line,) = lines()[before:]
    assert line["request_id"] == "trace-1" and line["status"] == 200 and line["route"] == PATCH_ROUTE
    assert line["method"] == "PATCH" and line["key_id"].startswith("kid_") and line["duration_ms"] >= 0
    assert line["level"] == "info" and line["ts"].endswith("Z") and line["logger"] == "agent_sessions.access"
    assert line["path"] == URL and line["msg"] == f"PATCH {PATCH_ROUTE} 200"
    assert admin["x-api-key"] not in json.dumps(line) and response.status_code == 200


def test_unauthenticated_and_unmatched_requests_are_logged_too(
    logged: tuple[TestClient, Callable[[], list[dict[str, Any]]]],
) -> None:
    client, lines = logged
    client.get(URL, headers={"x-api-key": "ask_" + "x" * 32})
    client.get("/nowhere")
    client.delete("/v2/events")  # a path that takes GET only: 405
    found = lines()
    assert [(line["status"], line["key_id"]) for line in found] == [(401, None), (404, None), (405, None)]
    assert found[1]["route"] == "unmatched" and found[2]["route"] == "/v2/events"
    assert "ask_" not in json.dumps(found)


def test_the_text_format_and_the_level_are_honoured(settings: Settings) -> None:
    buffer = io.StringIO()
    AccessLog("text", stream=buffer).line("req_1", "kid_1", "GET", "/v2/agents", "/v2/agents", 200, 0.0012)
    assert buffer.getvalue().endswith(" INFO agent_sessions.access: GET /v2/agents 200 req_1 1.2ms\n")
    quiet = AccessLog.of(settings.model_copy(update={"log_level": "WARNING"}))
    assert not quiet.enabled
