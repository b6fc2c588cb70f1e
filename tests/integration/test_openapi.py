"""/openapi.json describes every route, body and error, from the same types that validate."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any, cast

import orjson
from starlette.testclient import TestClient

from agent_sessions import errors
from agent_sessions.sessions.models import MetadataLimits, SessionPatch
from agent_sessions.web import openapi
from agent_sessions.web.edge import Edge
from agent_sessions.web.routes import ENDPOINTS


def spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def test_every_served_route_is_documented(client: TestClient) -> None:
    paths = spec(client)["paths"]
    served = {(m.lower(), path.template) for path in cast(Edge, client.app).paths for m in path.methods}
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
    error_ref = op["responses"]["404"]["content"]["application/json"]["schema"]["allOf"][0]["$ref"]
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
    assert op["requestBody"]["required"] is False  # every field is optional: no body is {}
    recover = document["paths"]["/v2/webhook_endpoints/{endpoint_id}/recover"]["post"]
    assert recover["requestBody"]["required"] is True  # `since` is required
    assert content["application/json"]["schema"] != content["application/merge-patch+json"]["schema"]
    operations = {o["operationId"] for ops in document["paths"].values() for o in ops.values()}
    for path in ("/v2/agents", "/v2/agents/{agent_key}/sessions"):
        links = document["paths"][path]["post"]["responses"]["201"]["links"]
        assert links and {link["operationId"] for link in links.values()} <= operations
    assert document["servers"] and document["info"]["license"]["name"]
    session = document["components"]["schemas"]["Session"]["properties"]
    assert session["created_at"]["format"] == session["updated_at"]["format"] == "date-time"


def test_every_error_is_documented_under_its_own_status(client: TestClient) -> None:
    """Each code of the hierarchy is answered by some operation, documented there under its status
    (the edge's own, for any path, are in the error reference)."""
    documented: dict[str, set[str]] = {}
    for ops in spec(client)["paths"].values():
        for op in ops.values():
            for status, response in op["responses"].items():
                if not status.startswith("2"):
                    schema = response["content"]["application/json"]["schema"]
                    documented.setdefault(status, set()).update(schema["allOf"][1]["properties"]["code"]["enum"])
    classes = [cls for cls in errors.described() if not cls.protocol]
    assert {cls.code for cls in classes} >= {
        "invalid_request",
        "conflict",
        "insufficient_storage",
        "rate_limit_exceeded",
    }
    for cls in classes:
        assert cls.code in documented[str(cls.status)], cls


def test_each_operation_lists_the_codes_it_answers_with(client: TestClient) -> None:
    paths = spec(client)["paths"]

    def codes(path: str, method: str, status: int) -> list[str]:
        response = paths[path][method]["responses"][str(status)]
        enum: list[str] = response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
        assert all(code in response["description"] for code in enum)
        return enum

    session = "/v2/agents/{agent_key}/sessions/{session_key}"
    assert codes(session, "patch", 404) == ["agent_not_found", "session_not_found"]
    assert codes(session, "patch", 412) == ["precondition_failed"]
    assert codes(session, "patch", 400) == ["invalid_request", "invalid_metadata"]
    assert codes("/v2/events", "get", 410) == ["cursor_expired"]
    assert codes("/v2/events/{event_id}", "get", 404) == ["event_not_found"]
    redeliver = "/v2/webhook_endpoints/{endpoint_id}/deliveries/{event_id}/redeliver"
    assert codes(redeliver, "post", 404) == ["webhook_endpoint_not_found", "delivery_not_found"]
    assert codes("/v2/webhook_endpoints/{endpoint_id}", "delete", 409) == ["managed_by_settings"]
    assert "412" not in paths["/v2/agents/{agent_key}"]["get"]["responses"]


def test_the_error_reference_is_generated_from_the_error_hierarchy() -> None:
    """docs/reference/errors.md lists every code (tools/reference_docs.py writes it), and every code any
    operation lists is in it."""
    root = Path(__file__).resolve().parents[2]
    check = subprocess.run(
        [sys.executable, "tools/reference_docs.py", "--check"], cwd=root, capture_output=True, text=True
    )
    assert check.returncode == 0, check.stderr
    page = (root / "docs/reference/errors.md").read_text()
    document = orjson.loads(openapi.document(ENDPOINTS, MetadataLimits()))
    listed = {
        code
        for ops in document["paths"].values()
        for op in ops.values()
        for status, response in op["responses"].items()
        if not status.startswith("2")
        for code in response["content"]["application/json"]["schema"]["allOf"][1]["properties"]["code"]["enum"]
    }
    assert listed and all(f"`{code}`" in page for code in listed)
    for code in ("delivery_not_found", "event_not_found", "cursor_expired", "event_gone", "managed_by_settings"):
        assert f"`{code}`" in page
