"""What an attacker's crafted input found: each of these was a 500 (or a silent 200), and is a 400 (or
the 404 it should be) that changes nothing. A 500 that remains says ``Connection: close``, so a
client's next request is never sent into a connection the server is about to close."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.sessions.services import Services
from agent_sessions.web.app import create_app
from tests.support.api import error

HOOKS = "/v2/webhook_endpoints"


def cursor(raw: str) -> str:
    return "c1." + base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, webhook_allow_private_networks=True)


@pytest.fixture
def made(client: TestClient, admin: dict[str, str]) -> dict[str, Any]:
    assert client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=admin).status_code == 201
    assert client.post("/v2/agents/agt_a/sessions", json={"key": "ase_1"}, headers=admin).status_code == 201
    body = {"url": "http://127.0.0.1:9/", "event_types": ["session.updated"]}
    hook: dict[str, Any] = client.post(HOOKS, json=body, headers=admin).json()
    return hook


@pytest.mark.parametrize(
    "after",
    [
        "c1.MDo5OTk5OTk5OTk5OTk5OTk5OTk5OS0w",  # 0:99999999999999999999-0
        cursor("0:1-18446744073709551616"),
        cursor("0:18446744073709551615-18446744073709551615"),  # nothing can follow it
    ],
)
def test_a_cursor_beyond_64_bits_is_400_on_the_log_and_before_the_stream_starts(
    client: TestClient, admin: dict[str, str], made: dict[str, Any], after: str
) -> None:
    error(client.get("/v2/events", params={"after": after}, headers=admin), 400, "invalid_request")
    error(client.get("/v2/events/stream", params={"after": after}, headers=admin), 400, "invalid_request")
    stream = client.get("/v2/events/stream", headers={**admin, "last-event-id": after})
    error(stream, 400, "invalid_request")


@pytest.mark.parametrize(
    "since",
    ["1970-01-01T00:00:00Z", "1969-12-31T23:59:59Z", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"],
)
def test_recover_since_at_or_before_the_epoch_or_in_the_future_is_400(
    client: TestClient, admin: dict[str, str], made: dict[str, Any], since: str
) -> None:
    answer = error(
        client.post(f"{HOOKS}/{made['id']}/recover", json={"since": since}, headers=admin), 400, "invalid_request"
    )
    assert "since" in answer["field_errors"]
    too_far = {"since": "2020-01-01T00:00:00Z", "page_key": cursor("0:99999999999999999999-0")}
    error(client.post(f"{HOOKS}/{made['id']}/recover", json=too_far, headers=admin), 400, "invalid_request")


@pytest.mark.parametrize(
    "expression",
    ["n = 18446744073709551616", "n = -9223372036854775809", "n > 1e400", "n IN (1, 99999999999999999999)"],
)
def test_filter_numbers_outside_the_metadata_range_are_400(
    client: TestClient, admin: dict[str, str], made: dict[str, Any], expression: str
) -> None:
    for path in ("/v2/agents/agt_a/sessions", "/v2/agents/agt_a/sessions/count"):
        answer = error(client.get(path, params={"metadata_filter": expression}, headers=admin), 400, "invalid_request")
        assert "metadata_filter" in answer["field_errors"]


@pytest.mark.parametrize(
    "path",
    [
        "/v2/agents?page_key=agt_" + "z" * 60,
        "/v2/agents?page_key=agt_" + "z" * 61,
        "/v2/agents/agt_a/sessions?page_key=ase_" + "z" * 61,
        "/v2/agents/agt_a/sessions?sort=created_at&page_key=" + "9" * 16 + ".ase_1",
        "/v2/agents/agt_a/sessions?sort=-updated_at&page_key=" + "9" * 17 + ".ase_1",
        "/v2/agents/agt_a/sessions/count?sort=-updated_at&page_key=" + "9" * 16 + ".ase_1",
        "/v2/agents/agt_a/sessions/ase_1/history?page_key=" + "9" * 18,
        "/v2/agents/agt_a/sessions/ase_1/history?page_key=" + "9" * 30,
        "/v2/webhook_endpoints/{hook}/deliveries?page_key=" + "9" * 16,
        "/v2/webhook_endpoints/{hook}/deliveries?page_key=" + "9" * 30,
    ],
)
def test_out_of_range_page_keys_are_400_or_a_page(
    client: TestClient, admin: dict[str, str], made: dict[str, Any], path: str
) -> None:
    answer = client.get(path.format(hook=made["id"]), headers=admin)
    assert answer.status_code in (200, 400), answer.text
    if answer.status_code == 400:
        assert "page_key" in answer.json()["field_errors"]


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_are_400_in_rules_and_in_every_body(
    client: TestClient, admin: dict[str, str], made: dict[str, Any], number: str
) -> None:
    json_type = {**admin, "content-type": "application/json"}
    rules = '{"rules": [{"name": "x", "path": "metadata.p", "becomes": [NUMBER]}]}'.replace("NUMBER", number)
    answer = error(
        client.put("/v2/agents/agt_a/escalation_rules", content=rules, headers=json_type), 400, "invalid_request"
    )
    assert "finite" in answer["messages"][0]
    assert client.get("/v2/agents/agt_a/escalation_rules", headers=admin).json()["source"] == "settings"  # unchanged
    dry_run = '{"old": {}, "new": {"p": NUMBER}}'.replace("NUMBER", number)
    error(
        client.post("/v2/agents/agt_a/escalation_rules/test", content=dry_run, headers=json_type),
        400,
        "invalid_request",
    )
    patch = '{"metadata": {"p": NUMBER}}'.replace("NUMBER", number)
    error(client.patch("/v2/agents/agt_a/sessions/ase_1", content=patch, headers=json_type), 400, "invalid_metadata")
    endpoint = '{"url": "http://127.0.0.1:9/", "event_types": ["session.updated"], "metadata": {"p": NUMBER}}'.replace(
        "NUMBER", number
    )
    error(client.post(HOOKS, content=endpoint, headers=json_type), 400, "invalid_metadata")


def test_an_optional_body_may_be_left_out_and_a_required_one_is_named(
    client: TestClient, admin: dict[str, str], made: dict[str, Any]
) -> None:
    rotated = client.post(f"{HOOKS}/{made['id']}/rotate_secret", headers=admin)  # no body, no Content-Type
    assert rotated.status_code == 200 and rotated.json()["secret"] != made["secret"], rotated.text
    missing = error(client.post(f"{HOOKS}/{made['id']}/recover", headers=admin), 400, "invalid_request")
    assert missing["field_errors"] == {"since": "field required (send a JSON body)"}
    wrong = client.post(
        f"{HOOKS}/{made['id']}/recover", content=b"since", headers={**admin, "content-type": "text/plain"}
    )
    error(wrong, 415, "unsupported_media_type")  # a body of another type is still 415


def test_an_event_query_naming_an_unknown_agent_is_404(
    client: TestClient, admin: dict[str, str], made: dict[str, Any]
) -> None:
    error(client.get("/v2/events", params={"agent_key": "agt_nope"}, headers=admin), 404, "agent_not_found")
    error(client.get("/v2/events/stream", params={"agent_key": "agt_nope"}, headers=admin), 404, "agent_not_found")


def test_a_500_closes_the_connection_and_says_so(
    settings: Settings, admin: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any) -> Any:
        raise RuntimeError("a bug")

    monkeypatch.setattr(Services, "get_agent", broken)
    with TestClient(create_app(settings), raise_server_exceptions=False) as client:
        response = client.get("/v2/agents/agt_a", headers=admin)
    answer = error(response, 500, "internal_error")
    assert answer["messages"] == ["internal error; quote the request id to support"]  # nothing internal
    assert response.headers["connection"] == "close"
