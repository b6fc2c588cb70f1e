"""CORS (CORS_ALLOW_ORIGINS): allowed origins get their preflight (204) and the Allow-Origin and
Expose-Headers on every answer, errors included; other origins, and requests without Origin, get no CORS
header at all; no origin configured: no CORS anywhere."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.web.app import create_app
from agent_sessions.web.cors import EXPOSED, HEADERS
from tests.support.api import error

PAGE = "https://chat.example.com"
SESSION = "/v2/agents/agt_a/sessions/ase_1"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(redis_url=redis_url, cors_allow_origins=(PAGE, "http://localhost:*"))


@pytest.fixture
def made(client: TestClient, admin: dict[str, str]) -> None:
    assert client.post("/v2/agents", json={"key": "agt_a", "name": "a"}, headers=admin).status_code == 201
    assert client.post("/v2/agents/agt_a/sessions", json={"key": "ase_1"}, headers=admin).status_code == 201


def cors(response: Any) -> dict[str, str]:
    return {k.lower(): v for k, v in response.headers.items() if k.lower().startswith("access-control-")}


def preflight(client: TestClient, origin: str, method: str = "PATCH", headers: str = "authorization, if-match") -> Any:
    return client.options(
        SESSION,
        headers={"origin": origin, "access-control-request-method": method, "access-control-request-headers": headers},
    )


@pytest.mark.parametrize("origin", [PAGE, "http://localhost:5173", "http://localhost:3000"])
def test_an_allowed_origin_gets_its_preflight_and_every_answer_carries_the_headers(
    client: TestClient, admin: dict[str, str], made: None, origin: str
) -> None:
    answer = preflight(client, origin)
    assert answer.status_code == 204 and answer.content == b""
    got = cors(answer)
    assert got["access-control-allow-origin"] == origin and "Origin" in answer.headers["vary"]
    assert {"PATCH", "GET", "POST", "DELETE"} <= set(got["access-control-allow-methods"].split(", "))
    allowed = {h.lower() for h in got["access-control-allow-headers"].split(", ")}
    assert {h.lower() for h in HEADERS} <= allowed and "x-api-key" not in allowed  # pages send tokens, not keys
    assert int(got["access-control-max-age"]) > 0
    for response in (
        client.patch(SESSION, json={"description": "x"}, headers={**admin, "origin": origin}),
        client.get(SESSION, headers={"origin": origin}),  # 401
        client.patch(SESSION, json={"description": "x"}, headers={**admin, "origin": origin, "if-match": '"9"'}),  # 412
        client.get("/v2/agents/agt_a/sessions/ase_none", headers={**admin, "origin": origin}),  # 404
        client.get("/openapi.json", headers={"origin": origin}),  # not an endpoint: the Starlette app's
    ):
        got = cors(response)
        assert got["access-control-allow-origin"] == origin, response.status_code
        assert response.headers["vary"] == "Origin" and response.headers["x-request-id"]
        assert set(got["access-control-expose-headers"].split(", ")) == set(EXPOSED)
        assert "access-control-allow-credentials" not in got  # no credentials mode


@pytest.mark.parametrize("origin", ["https://evil.example.com", "http://localhost.evil.com:80", "null"])
def test_other_origins_and_server_side_clients_get_no_cors_header(
    client: TestClient, admin: dict[str, str], made: None, origin: str
) -> None:
    refused = preflight(client, origin)
    assert not cors(refused) and refused.status_code == 405  # no preflight answer for it
    assert not cors(client.patch(SESSION, json={"description": "y"}, headers={**admin, "origin": origin}))
    assert not cors(client.get(SESSION, headers=admin))  # no Origin: a server, not a page


def test_no_origin_configured_no_cors(redis_url: str, admin: dict[str, str]) -> None:
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        error(preflight(client, PAGE), 405, "method_not_allowed")
        assert not cors(client.get("/v2/agents", headers={**admin, "origin": PAGE}))


def test_a_star_allows_every_origin_and_names_it(redis_url: str, admin: dict[str, str]) -> None:
    with TestClient(create_app(Settings(redis_url=redis_url, cors_allow_origins=("*",)))) as client:
        origin = "https://anything.example.org"
        assert cors(preflight(client, origin))["access-control-allow-origin"] == origin
        assert (
            cors(client.get("/v2/agents", headers={**admin, "origin": origin}))["access-control-allow-origin"] == origin
        )
