"""The session contract over HTTP, through the app's real lifespan and a real Redis."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from pydantic import TypeAdapter
from starlette.testclient import TestClient

from agent_sessions.sessions.models import Session, SessionList
from tests.support.api import SEED_AGENT, SEED_REQUEST, SEED_RESPONSE, SEED_SESSION, SESSIONS, URL, error
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster


def test_seed_example_patch(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    response = client.patch(URL, json=SEED_REQUEST, headers=admin)
    assert response.status_code == 200
    body = response.json()
    TypeAdapter(Session).validate_python(body)
    assert {k: body[k] for k in SEED_RESPONSE} == SEED_RESPONSE
    assert body["created_at"] == seeded["created_at"]
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")
    assert body["version"] == 2
    assert client.get(URL, headers=admin).json() == body


def test_only_sent_fields_change(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    body = client.patch(URL, json={"enabled": False}, headers=admin).json()
    assert body["enabled"] is False
    assert body["description"] == seeded["description"] and body["metadata"] == seeded["metadata"]
    body = client.patch(URL, json={"description": "only this"}, headers=admin).json()
    assert body["enabled"] is False and body["metadata"] == seeded["metadata"]
    assert body["version"] == 3


def test_metadata_is_replaced_completely(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    body = client.patch(URL, json={"metadata": {"priority": "low"}}, headers=admin).json()
    assert body["metadata"] == {"priority": "low"}
    assert client.patch(URL, json={"metadata": {}}, headers=admin).json()["metadata"] == {}


@pytest.mark.parametrize(
    "patch", [{}, {"enabled": True}, {"description": "Customer support session for billing inquiry"}]
)
def test_empty_and_value_equal_patches_are_noops(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any], patch: dict[str, Any]
) -> None:
    response = client.patch(URL, json=patch, headers=admin)
    assert response.status_code == 200
    assert response.json() == seeded


def test_equal_metadata_in_another_key_order_is_a_noop(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any]
) -> None:
    reordered = dict(reversed(list(seeded["metadata"].items())))
    assert client.patch(URL, json={"metadata": reordered}, headers=admin).json()["version"] == 1


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ('{"enabled": "true"}', "enabled"),
        ('{"description": null}', "description"),
        ('{"id": "ase_other"}', "id"),
        ('{"created_at": "2024-01-01T00:00:00Z"}', "created_at"),
        ('{"agent_key": "agt_x"}', "agent_key"),
        ('{"surprise": 1}', "surprise"),
    ],
)
def test_bad_fields_are_400_and_change_nothing(
    client: TestClient,
    admin: dict[str, str],
    seeded: dict[str, Any],
    sync_redis: redis.Redis,
    raw: str,
    field: str,
) -> None:
    before = sync_redis.hgetall(KEYS.session(SEED_AGENT, SEED_SESSION))
    body = error(
        client.patch(URL, content=raw, headers={**admin, "content-type": "application/json"}),
        400,
        "invalid_request",
    )
    assert field in body["field_errors"]
    assert sync_redis.hgetall(KEYS.session(SEED_AGENT, SEED_SESSION)) == before


@pytest.mark.parametrize(
    "raw",
    [
        "not json",
        "[1]",
        "",
        '{"metadata": {"a": ' + "[" * 5000 + "]" * 5000 + "}}",
        '{"metadata": {"n": ' + "9" * 30000 + "}}",
    ],
)
def test_malformed_bodies_and_json_bombs_are_400(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any], raw: str
) -> None:
    error(
        client.patch(URL, content=raw, headers={**admin, "content-type": "application/json"}),
        400,
        "invalid_request",
    )


def test_metadata_limit_violation_names_the_path(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any], sync_redis: redis.Redis
) -> None:
    deep: dict[str, Any] = {"x": 1}
    for _ in range(6):
        deep = {"a": deep}
    body = error(client.patch(URL, json={"metadata": deep, "description": "x"}, headers=admin), 400, "invalid_metadata")
    assert list(body["field_errors"]) == ["metadata.a.a.a.a.a"]
    error(client.patch(URL, json={"metadata": [1]}, headers=admin), 400, "invalid_metadata")
    assert sync_redis.hget(KEYS.session(SEED_AGENT, SEED_SESSION), "version") == "1"


def test_body_over_64_kib_is_413(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    big = '{"description": "' + "x" * (64 * 1024) + '"}'
    error(
        client.patch(URL, content=big, headers={**admin, "content-type": "application/json"}),
        413,
        "request_too_large",
    )

    def chunks() -> Any:  # no Content-Length: the limit holds on the streamed body too
        yield big.encode()

    error(
        client.patch(URL, content=chunks(), headers={**admin, "content-type": "application/json"}),
        413,
        "request_too_large",
    )


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
def test_non_json_content_type_is_415(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any], content_type: str | None
) -> None:
    headers = dict(admin) | ({"content-type": content_type} if content_type else {})
    error(client.patch(URL, content=b'{"enabled": false}', headers=headers), 415, "unsupported_media_type")


def test_json_with_charset_is_accepted(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    response = client.patch(
        URL,
        content=b'{"enabled": false}',
        headers={**admin, "content-type": "application/json; charset=utf-8"},
    )
    assert response.status_code == 200


@pytest.mark.parametrize(
    "url",
    [
        f"/v2/agents/agent_x/sessions/{SEED_SESSION}",
        f"/v2/agents/{SEED_AGENT}/sessions/session_1",
        f"/v2/agents/{SEED_AGENT}/sessions/ase_" + "x" * 61,
        f"/v2/agents/{SEED_AGENT}/sessions/ase_a.b",
    ],
)
def test_bad_path_keys_are_400(client: TestClient, admin: dict[str, str], seeded: dict[str, Any], url: str) -> None:
    error(client.patch(url, json={"enabled": False}, headers=admin), 400, "invalid_request")


def test_missing_agent_and_session_are_404(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    error(
        client.patch(f"/v2/agents/agt_nope/sessions/{SEED_SESSION}", json={"enabled": False}, headers=admin),
        404,
        "agent_not_found",
    )
    error(client.patch(f"{SESSIONS}/ase_nope", json={"enabled": False}, headers=admin), 404, "session_not_found")
    error(client.patch(f"{SESSIONS}/ase_nope", json={}, headers=admin), 404, "session_not_found")
    error(client.get(f"{SESSIONS}/ase_nope", headers=admin), 404, "session_not_found")
    error(client.delete(f"{SESSIONS}/ase_nope", headers=admin), 404, "session_not_found")


def test_create_session_generates_key_and_refuses_duplicates(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any]
) -> None:
    created = client.post(SESSIONS, json={"description": "new"}, headers=admin)
    assert created.status_code == 201
    body = created.json()
    assert body["id"].startswith("ase_") and body["version"] == 1 and body["enabled"] is True
    assert body["metadata"] == {} and body["name"] == ""
    error(client.post(SESSIONS, json={"key": SEED_SESSION}, headers=admin), 409, "session_already_exists")
    error(client.post("/v2/agents/agt_nope/sessions", json={}, headers=admin), 404, "agent_not_found")
    error(client.post(SESSIONS, json={"key": "bad_key"}, headers=admin), 400, "invalid_request")


def test_list_sessions_pages_and_filters(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    for i in range(5):
        client.post(SESSIONS, json={"key": f"ase_{i}", "enabled": i % 2 == 0}, headers=admin)
    keys, page_key = [], None
    while True:
        params: dict[str, Any] = {"limit": 2} | ({"page_key": page_key} if page_key else {})
        page = client.get(SESSIONS, params=params, headers=admin).json()
        TypeAdapter(SessionList).validate_python(page)
        assert page["metadata"]["total_count"] == 6
        keys += [s["id"] for s in page["sessions"]]
        page_key = page["metadata"]["page_key"]
        if page_key is None:
            break
    assert keys == ["ase_0", "ase_1", "ase_2", "ase_3", "ase_4", SEED_SESSION]
    disabled = client.get(SESSIONS, params={"enabled": "false"}, headers=admin).json()
    assert [s["id"] for s in disabled["sessions"]] == ["ase_1", "ase_3"]
    enabled = client.get(SESSIONS, params={"enabled": "true"}, headers=admin).json()
    assert [s["id"] for s in enabled["sessions"]] == ["ase_0", "ase_2", "ase_4", SEED_SESSION]


@pytest.mark.parametrize(
    "params",
    [
        {"limit": 0},
        {"limit": 101},
        {"limit": "x"},
        {"enabled": "yes"},
        {"page_key": "!!!"},
        {"page_key": "YWd0X3g"},
    ],
)
def test_list_rejects_bad_query(
    client: TestClient, admin: dict[str, str], seeded: dict[str, Any], params: dict[str, Any]
) -> None:
    error(client.get(SESSIONS, params=params, headers=admin), 400, "invalid_request")


def test_delete_session(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    response = client.delete(URL, headers=admin)
    assert response.status_code == 204 and response.content == b""
    error(client.get(URL, headers=admin), 404, "session_not_found")
    assert client.get(SESSIONS, headers=admin).json()["metadata"]["total_count"] == 0


def test_request_id_is_echoed_or_generated(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    assert client.get(URL, headers={**admin, "x-request-id": "abc-123"}).headers["x-request-id"] == "abc-123"
    generated = client.get(URL, headers=admin).headers["x-request-id"]
    assert generated.startswith("req_")
    body = error(client.get(URL, headers={"x-request-id": "mine-1"}), 401, "unauthorized")
    assert body["request_id"] == "mine-1"
    assert client.get("/healthz").headers["x-request-id"].startswith("req_")
    assert client.get("/no/such/route").headers["x-request-id"].startswith("req_")


def test_405_lists_every_method_of_the_path(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    response = client.request("PUT", URL, headers=admin)
    assert response.status_code == 405
    assert set(response.headers["allow"].split(", ")) == {"GET", "HEAD", "PATCH", "DELETE"}
    assert response.json()["code"] == "method_not_allowed"


def test_empty_page_key_is_invalid(client: TestClient, admin: dict[str, str], seeded: dict[str, Any]) -> None:
    error(client.get(SESSIONS, params={"page_key": ""}, headers=admin), 400, "invalid_request")
    assert client.get(SESSIONS, params={"page_key": "ase_0"}, headers=admin).status_code == 200
