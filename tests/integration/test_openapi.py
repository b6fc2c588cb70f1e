"""/openapi.json describes every route, body and error, from the same types that validate."""

from __future__ import annotations

from typing import Any, cast

from starlette.applications import Starlette
from starlette.routing import Route
from starlette.testclient import TestClient

from agent_sessions import errors
from agent_sessions.models import SessionPatch
from agent_sessions.web.app import ENDPOINTS


def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_served_route_is_documented(client: TestClient) -> None:
    paths = spec(client)["paths"]
    served = {
        (m.lower(), r.path)
        for r in cast(Starlette, client.app).routes
        if isinstance(r, Route) and r.include_in_schema
        for m in (r.methods or ())
        if m != "HEAD"
    }
    documented = {(m, p) for p, ops in paths.items() for m in ops}
    assert served == documented
    assert len(documented) == len(ENDPOINTS)


def test_patch_documents_body_and_every_error(client: TestClient) -> None:
    document = spec(client)
    op = document["paths"]["/v2/agents/{agent_key}/sessions/{session_key}"]["patch"]
    assert set(op["responses"]) == {
        *("200", "400", "401", "403", "404", "409", "412", "413", "415", "422", "429", "503", "507")
    }
    assert {p["name"] for p in op["parameters"]} >= {"If-Match", "Idempotency-Key"}
    assert set(op["requestBody"]["content"]) == {"application/json", "application/merge-patch+json"}
    assert "ETag" in op["responses"]["200"]["headers"]
    body_ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    body = document["components"]["schemas"][body_ref.rsplit("/", 1)[1]]
    assert set(body["properties"]) == set(SessionPatch.__annotations__) - {"__pydantic_config__"}
    assert body["additionalProperties"] is False
    assert body["properties"]["enabled"]["type"] == "boolean"
    error_ref = op["responses"]["404"]["content"]["application/json"]["schema"]["$ref"]
    error = document["components"]["schemas"][error_ref.rsplit("/", 1)[1]]
    assert set(error["required"]) == {"code", "messages", "request_id"}
    assert "Retry-After" in op["responses"]["503"]["headers"]


def test_creates_document_conflicts(client: TestClient) -> None:
    paths = spec(client)["paths"]
    assert "409" in paths["/v2/agents"]["post"]["responses"]
    assert "409" in paths["/v2/agents/{agent_key}/sessions"]["post"]["responses"]


def test_merge_patch_has_its_own_schema_and_creates_link_to_what_they_made(client: TestClient) -> None:
    document = spec(client)
    op = document["paths"]["/v2/agents/{agent_key}/sessions/{session_key}"]["patch"]
    content = op["requestBody"]["content"]
    assert op["requestBody"]["required"] is True
    assert content["application/json"]["schema"] != content["application/merge-patch+json"]["schema"]
    operations = {o["operationId"] for ops in document["paths"].values() for o in ops.values()}
    for path in ("/v2/agents", "/v2/agents/{agent_key}/sessions"):
        links = document["paths"][path]["post"]["responses"]["201"]["links"]
        assert links and {link["operationId"] for link in links.values()} <= operations
    assert document["servers"] and document["info"]["license"]["name"]
    session = document["components"]["schemas"]["Session"]["properties"]
    assert session["created_at"]["format"] == session["updated_at"]["format"] == "date-time"


def test_every_error_is_documented_under_its_own_status(client: TestClient) -> None:
    documented = {
        status: response["description"]
        for ops in spec(client)["paths"].values()
        for op in ops.values()
        for status, response in op["responses"].items()
    }
    classes = errors.described()
    assert {cls.code for cls in classes} >= {
        "invalid_request",
        "conflict",
        "insufficient_storage",
        "rate_limit_exceeded",
    }
    for cls in classes:
        assert f"{cls.code}: {cls.description}" in documented[str(cls.status)], cls
