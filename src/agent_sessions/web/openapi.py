"""``/openapi.json``, generated from the endpoint table and the same pydantic types that validate.

Which error responses an endpoint documents follows from what it does (needs a key, takes a body, has
path keys, creates), the same facts that decide which checks ``pipeline.prepare`` runs.
"""

from __future__ import annotations

import copy
from typing import TYPE_CHECKING, Any

import orjson
from pydantic import TypeAdapter

from agent_sessions import __version__, errors
from agent_sessions.access.auth import TOKENS_AGENT, TOKENS_SESSION
from agent_sessions.sessions import models
from agent_sessions.webhooks.model import ENDPOINT_ID_PATTERN
from agent_sessions.webhooks.services import MESSAGE_ID_PATTERN

if TYPE_CHECKING:
    from agent_sessions.web.framework import Endpoint

REF = "#/components/schemas/{model}"


RESPONSE_HEADERS: dict[int, tuple[str, ...]] = {
    401: ("WWW-Authenticate",),
    429: ("Retry-After",),
    503: ("Retry-After",),
}
HEADERS = {
    "X-Request-ID": {
        "description": "the client's X-Request-ID, or a generated one",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {"description": "authentication scheme", "schema": {"type": "string"}},
    "Retry-After": {"description": "seconds to wait before retrying", "schema": {"type": "integer"}},
    "ETag": {"description": 'the session\'s version as a strong entity tag, e.g. "7"', "schema": {"type": "string"}},
    "Idempotent-Replayed": {
        "description": "true when this is the stored response to an earlier request with the same Idempotency-Key",
        "schema": {"type": "string"},
    },
}
HEADER_SCHEMAS = {
    "If-Match": {"type": "string"},
    "Idempotency-Key": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[ -~]+$"},
}
HEADER_PARAMS = {
    "If-Match": "apply only if the session's current ETag is one of these (or * for any existing session); "
    "otherwise 412",
    "Idempotency-Key": "a unique key for this request: a retry with the same key and request replays the first "
    "response (for 24 hours) instead of applying again",
}


def _schema(t: type[Any], components: dict[str, Any]) -> dict[str, str]:
    schema = TypeAdapter(t).json_schema(ref_template=REF)
    components.update(schema.pop("$defs", {}))
    components[t.__name__] = schema
    return {"$ref": REF.format(model=t.__name__)}


def _response(description: str, schema: dict[str, Any] | None, headers: tuple[str, ...] = ()) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": description,
        "headers": {h: {"$ref": f"#/components/headers/{h}"} for h in ("X-Request-ID", *headers)},
    }
    if schema is not None:
        response["content"] = {"application/json": {"schema": schema}}
    return response


# Path parameters besides the agent and session keys.
PATH_SCHEMAS: dict[str, dict[str, Any]] = {
    "endpoint_id": {"type": "string", "pattern": ENDPOINT_ID_PATTERN},
    "event_id": {"type": "string", "pattern": MESSAGE_ID_PATTERN},
}


def error_classes(e: Endpoint) -> list[type[errors.ServiceError]]:
    """The errors an operation answers with: what it does implies most (a key, a body, path keys, a
    create), ``Endpoint.raises`` names the rest. The edge's own (404 not_found, 405, 408, 431, 500)
    hold for every path and are in the error reference instead."""
    found: list[type[errors.ServiceError]] = []
    if e.role is not None:
        found += [errors.Unauthorized, errors.Forbidden, errors.RateLimited, errors.StoreUnavailable]
    if e.tokens:
        found.append(errors.TokenExpired)
    if e.path_params or e.body is not None or e.query:
        found.append(errors.InvalidRequest)
    if "agent_key" in e.path_keys:
        found.append(errors.AgentNotFound)
    if "session_key" in e.path_keys:
        found.append(errors.SessionNotFound)
    if e.body is not None:
        if "metadata" in models.body_adapter(e.body).json_schema().get("properties", {}):
            found.append(errors.InvalidMetadata)
        found += [errors.RequestTooLarge, errors.UnsupportedMediaType, errors.InsufficientStorage]
    if e.creates:
        found.append(errors.AgentAlreadyExists if "{agent_key}" not in e.path else errors.SessionAlreadyExists)
    if e.merge_patch:
        found.append(errors.Conflict)
    if e.conditional:
        found.append(errors.PreconditionFailed)
    if e.idempotent:
        found.append(errors.IdempotencyKeyReused)
    if e.path == "/readyz":
        found.append(errors.StoreUnavailable)
    return list(dict.fromkeys([*found, *e.raises]))


def error_responses(e: Endpoint) -> dict[int, list[type[errors.ServiceError]]]:
    by_status: dict[int, list[type[errors.ServiceError]]] = {}
    for cls in error_classes(e):
        by_status.setdefault(cls.status, []).append(cls)
    return dict(sorted(by_status.items()))


def _error_response(classes: list[type[errors.ServiceError]], error: dict[str, str]) -> dict[str, Any]:
    """One error status of an operation: the codes it answers with there, described and enumerated."""
    codes = list(dict.fromkeys(cls.code for cls in classes))
    described = {cls.code: cls.description for cls in reversed(classes)}  # the first class's words
    text = " | ".join(f"{code}: {described[code]}" for code in codes)
    schema = {"allOf": [error, {"properties": {"code": {"enum": codes}}}]}
    return _response(text, schema, RESPONSE_HEADERS.get(classes[0].status, ()))


TOKEN_SCOPES = {
    TOKENS_AGENT: "a client token of the agent",
    TOKENS_SESSION: "a client token of the agent or the session",
}


def who_may(e: Endpoint) -> str:
    """Who may call it: the role it needs, and whether a client token may."""
    if e.role is None:
        return "No credentials needed."
    said = f"Needs the {e.role} role (an API key, or {TOKEN_SCOPES[e.tokens]})" if e.tokens else ""
    said = said or f"Needs an API key with the {e.role} role"
    if not e.any_agent:
        said += ", not limited to some agents"
    return said + "."


def _operation(e: Endpoint, components: dict[str, Any], error: dict[str, str]) -> dict[str, Any]:
    op: dict[str, Any] = {"operationId": e.handler.__name__, "summary": e.summary, "description": who_may(e)}
    params: list[dict[str, Any]] = [
        {
            "name": k,
            "in": "path",
            "required": True,
            "schema": {
                "type": "string",
                "maxLength": models.KEY_MAX_LENGTH,
                "pattern": models.AGENT_KEY_PATTERN if k == "agent_key" else models.SESSION_KEY_PATTERN,
            },
        }
        for k in e.path_keys
    ]
    params += [
        {"name": k, "in": "path", "required": True, "schema": PATH_SCHEMAS.get(k, {"type": "string", "maxLength": 100})}
        for k in e.path_params
        if k not in e.path_keys
    ]
    params += [
        {"name": q.name, "in": "query", "required": False, "schema": q.schema, "description": q.description}
        for q in e.query
    ]
    for name, wanted in (("If-Match", e.conditional), ("Idempotency-Key", e.idempotent)):
        if wanted:
            params.append(
                {
                    "name": name,
                    "in": "header",
                    "required": False,
                    "schema": HEADER_SCHEMAS[name],
                    "description": HEADER_PARAMS[name],
                }
            )
    if params:
        op["parameters"] = params
    if e.body is not None:
        content = {"application/json": {"schema": _schema(e.body, components)}}
        if e.merge_patch:
            # Its own schema: generated clients that see one schema under two media types send every
            # body as the last one, and a plain PATCH (metadata replaced) would become a merge.
            content["application/merge-patch+json"] = {"schema": {"$ref": REF.format(model=MERGE_PATCH)}}
        # A body whose fields are all optional may be left out (it is then {}).
        op["requestBody"] = {"required": not models.body_optional(e.body), "content": content}
    success = _schema(e.response, components) if e.response is not None else None
    success_headers = (("ETag",) if e.etag else ()) + (("Idempotent-Replayed",) if e.idempotent else ())
    op["responses"] = {str(e.status): _response("success", success, success_headers)}
    if e.media_type != "application/json":
        op["responses"][str(e.status)]["content"] = {e.media_type: {"schema": {"type": "string"}}}
        op["parameters"].append(
            {
                "name": "Last-Event-ID",
                "in": "header",
                "required": False,
                "schema": {"type": "string", "maxLength": 200},
                "description": "the id of the last message received: resume after it",
            }
        )
    if e.creates:
        op["responses"][str(e.status)]["links"] = LINKS[e.path]
    for status, classes in error_responses(e).items():
        op["responses"][str(status)] = _error_response(classes, error)
    op["security"] = [{"apiKey": []}, {"bearer": []}] if e.role is not None else []
    return op


BODIES = ("AgentCreate", "AgentPatch", "SessionCreate", "SessionPatch")
MERGE_PATCH = "SessionMergePatch"


def merge_patch_schema(plain: dict[str, Any]) -> dict[str, Any]:
    """The plain PATCH's schema, read as a JSON Merge Patch (RFC 7396). The metadata limits apply to
    the patch, and again to the merged result, which no schema can say."""
    schema = copy.deepcopy(plain)
    schema["title"] = MERGE_PATCH
    schema["description"] = (
        "JSON Merge Patch (RFC 7396) of a session: metadata is merged into the stored metadata, and a null "
        "value deletes that key; description and enabled replace as in a plain PATCH"
    )
    schema["properties"]["metadata"] = {
        "$ref": REF.format(model="Metadata"),
        "description": "merged into the stored metadata; null deletes a key",
    }
    return schema


def _link(operation: str, **parameters: str) -> dict[str, Any]:
    return {"operationId": operation, "parameters": parameters}


# What a create's 201 leads to: the operations that take the new key (so tools such as schemathesis
# follow a create with calls on what it made).
_AGENT = {"agent_key": "$response.body#/key"}
_SESSION = {"agent_key": "$request.path.agent_key", "session_key": "$response.body#/id"}
LINKS: dict[str, dict[str, Any]] = {
    "/v2/agents": {
        name: _link(name, **_AGENT)
        for name in ("get_agent", "update_agent", "delete_agent", "get_report", "create_session", "list_sessions")
    },
    "/v2/agents/{agent_key}/sessions": {
        name: _link(name, **_SESSION) for name in ("get_session", "update_session", "delete_session", "session_history")
    },
}


def document(endpoints: tuple[Endpoint, ...], limits: models.MetadataLimits) -> bytes:
    components: dict[str, Any] = {}
    error = _schema(models.ErrorBody, components)
    paths: dict[str, dict[str, Any]] = {}
    for e in endpoints:
        paths.setdefault(e.path, {})[e.method.lower()] = _operation(e, components, error)
    # Request bodies carry the metadata limits in force; responses hold any stored metadata.
    components.update(models.metadata_json_schema(limits))
    for body in BODIES:
        if body in components:
            components[body]["properties"]["metadata"] = {"$ref": REF.format(model="Metadata")}
    components[MERGE_PATCH] = merge_patch_schema(components["SessionPatch"])
    spec = {
        "openapi": "3.1.0",
        "info": {
            "title": "agent-sessions",
            "version": __version__,
            "license": {"name": "Proprietary", "identifier": "LicenseRef-Proprietary"},
        },
        "servers": [{"url": "/", "description": "the server that serves this document"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "headers": HEADERS,
            "securitySchemes": {
                "apiKey": {"type": "apiKey", "in": "header", "name": "x-api-key"},
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "an API key (ask_...), or a client token (act_...) where the operation takes one",
                },
            },
        },
    }
    return orjson.dumps(spec)
