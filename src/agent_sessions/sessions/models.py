"""Request and response shapes, defined once.

Request bodies are ``TypedDict``s validated by pydantic straight from JSON bytes: the result holds only
the fields the client sent, which is exactly the PATCH semantics ("only the fields sent change"), and
strict mode means ``"true"`` is not a boolean and ``null`` is not a string. The same types generate the
OpenAPI document (``web/openapi.py``), so the spec cannot drift from what is enforced.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Annotated, Any, Literal, NotRequired

import orjson
from pydantic import ConfigDict, Field, StringConstraints, TypeAdapter, ValidationError, WithJsonSchema
from typing_extensions import TypedDict

from agent_sessions.errors import InvalidMetadata, InvalidRequest

KEY_MAX_LENGTH = 64
# The contract's key formats, stated once: validation, path checks, page keys and /openapi.json use these.
AGENT_KEY_PATTERN = "^agt_[0-9a-zA-Z_-]+$"
SESSION_KEY_PATTERN = "^ase_[0-9a-zA-Z_-]+$"
AGENT_KEY_RE = re.compile(AGENT_KEY_PATTERN)
SESSION_KEY_RE = re.compile(SESSION_KEY_PATTERN)

AgentKey = Annotated[str, StringConstraints(pattern=AGENT_KEY_PATTERN, max_length=KEY_MAX_LENGTH)]
SessionKey = Annotated[str, StringConstraints(pattern=SESSION_KEY_PATTERN, max_length=KEY_MAX_LENGTH)]
Name = Annotated[str, StringConstraints(min_length=1, max_length=255)]
Description = Annotated[str, StringConstraints(max_length=16 * 1024)]
Metadata = dict[str, Any]
# RFC 3339 UTC times: strings on the wire, typed as date-time for generated clients.
Timestamp = Annotated[str, WithJsonSchema({"type": "string", "format": "date-time"})]

STRICT = ConfigDict(extra="forbid", strict=True)

# Time-to-idle, in minutes (fractions allowed: 0.5 is 30 s); 0: never. At most ten years.
TTI_MAX_MINUTES = 10 * 365 * 24 * 60
TtiMinutes = Annotated[float, Field(ge=0, le=TTI_MAX_MINUTES, allow_inf_nan=False)]


def stored_minutes(minutes: float) -> str:
    """A time-to-idle as the session hash stores it: "30", "0.5" (the shortest exact text)."""
    return str(int(minutes)) if minutes == int(minutes) else repr(minutes)


class AgentCreate(TypedDict):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    key: NotRequired[AgentKey]
    name: Name
    description: NotRequired[Description]
    metadata: NotRequired[Metadata]
    enabled: NotRequired[bool]
    default_tti_minutes: NotRequired[TtiMinutes]


class AgentPatch(TypedDict, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    name: Name
    description: Description
    metadata: Metadata
    enabled: bool
    default_tti_minutes: TtiMinutes


class SessionCreate(TypedDict, total=False):
    __pydantic_config__ = STRICT  # type: ignore[misc]
    key: SessionKey
    name: Annotated[str, StringConstraints(max_length=255)]
    description: Description
    metadata: Metadata
    enabled: bool
    tti_minutes: TtiMinutes  # absent: the agent's default_tti_minutes


class SessionPatch(TypedDict, total=False):
    """The seed's PATCH body, and the time-to-idle. ``name`` is set at creation only."""

    __pydantic_config__ = STRICT  # type: ignore[misc]
    description: Description
    metadata: Metadata
    enabled: bool
    tti_minutes: TtiMinutes


class Agent(TypedDict):
    key: str
    name: str
    description: str
    metadata: Metadata
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp
    default_tti_minutes: float


class Session(TypedDict):
    id: str
    agent_key: str
    name: str
    description: str
    metadata: Metadata
    enabled: bool
    created_at: Timestamp
    updated_at: Timestamp
    version: int
    tti_minutes: float
    expires_at: Timestamp | None  # updated_at + tti_minutes, to the millisecond; null: never


class PageMetadata(TypedDict):
    page_key: str | None
    total_count: int


class FoundMetadata(TypedDict):
    page_key: str | None
    total_count: int | None  # null: more sessions than one request examines (use /sessions/count)


class SessionCount(TypedDict):
    count: int  # with page_key null: the count; else the count so far, to add to the next request's
    page_key: str | None


class AgentList(TypedDict):
    agents: list[Agent]
    metadata: PageMetadata


class SessionList(TypedDict):
    sessions: list[Session]
    metadata: FoundMetadata


class Change(TypedDict):
    old: Any
    new: Any


class HistoryEntry(TypedDict):
    version: int
    at: Timestamp
    actor: str
    request_id: str
    changes: dict[str, Change]


class History(TypedDict):
    history: list[HistoryEntry]
    metadata: PageMetadata


class ErrorBody(TypedDict):
    code: str
    messages: list[str]
    request_id: str
    field_errors: NotRequired[dict[str, str]]


class Health(TypedDict):
    status: Literal["ok"]


_ADAPTERS: dict[type[Any], TypeAdapter[Any]] = {}


def body_adapter(model: type[Any]) -> TypeAdapter[Any]:
    adapter = _ADAPTERS.get(model)
    if adapter is None:
        adapter = _ADAPTERS[model] = TypeAdapter(model)
    return adapter


def body_optional(model: type[Any]) -> bool:
    """Whether a request may leave this body out (every field is optional)."""
    try:
        body_adapter(model).validate_python({})
    except ValidationError:
        return False
    return True


def empty_body(model: type[Any]) -> dict[str, Any]:
    """A request that sent no body: the body ``{}`` when every field is optional, else 400 naming the
    fields it needs (never 415: there was nothing to be of the wrong type)."""
    try:
        body: dict[str, Any] = body_adapter(model).validate_python({})
    except ValidationError as exc:
        missing = [".".join(str(p) for p in err["loc"]) for err in exc.errors(include_url=False)]
        raise InvalidRequest.for_fields({name: "field required (send a JSON body)" for name in missing}) from None
    return body


def parse_body(model: type[Any], raw: bytes) -> dict[str, Any]:
    """Validate JSON bytes against a body type; errors become ``invalid_request``/``invalid_metadata``."""
    try:
        body: dict[str, Any] = body_adapter(model).validate_json(raw)
    except ValidationError as exc:
        raise _body_error(exc) from None
    return body


def _body_error(exc: ValidationError) -> InvalidRequest:
    errors = exc.errors(include_url=False)
    first = errors[0]
    if first["type"] == "json_invalid":
        return InvalidRequest(f"body is not valid JSON: {first['msg'].removeprefix('Invalid JSON: ')}")
    if not first["loc"]:
        return InvalidRequest("body must be a JSON object")
    fields: dict[str, str] = {}
    for err in errors:
        if err["type"] == "finite_number":  # one of a union's branches: say only this
            path = ".".join(str(p) for p in err["loc"][:-1] if p != "float")
            return InvalidRequest.for_fields({path: "numbers must be finite (NaN, Infinity and 1e400 are refused)"})
    for err in errors:
        path = ".".join(str(p) for p in err["loc"])
        if err["type"] == "extra_forbidden":
            fields[path] = "unknown or read-only field; it cannot be set"
        elif err["type"] == "missing":
            fields[path] = "field required"
        else:
            fields[path] = err["msg"]
    if any(path == "metadata" or path.startswith("metadata.") for path in fields):
        return InvalidMetadata.for_fields({k: v for k, v in fields.items() if k.startswith("metadata")})
    return InvalidRequest.for_fields(fields)


@dataclass(frozen=True)
class MetadataLimits:
    max_keys: int = 64
    max_key_length: int = 64
    max_depth: int = 5
    max_bytes: int = 16 * 1024


# JSON consumers in other languages (JavaScript above all) lose precision past 2**53; past 64 bits
# most cannot parse the number at all. Numbers must lie in the signed 64-bit range (also floats, so that
# the rule is one range, as /openapi.json states it).
NUMBER_MIN, NUMBER_MAX = -(2**63), 2**63 - 1


def encode_metadata(value: Metadata, limits: MetadataLimits) -> bytes:
    """Check ``value`` against the limits and return its canonical JSON (sorted keys, compact, and
    numbers by value: a float with no fractional part is stored as the integer it equals, so ``1.0``
    is stored, returned and compared as ``1``).

    Canonical form makes "the same metadata" a byte comparison inside the Lua script, so a PATCH
    that sends equal metadata in another key order, or ``1.0`` for ``1``, is still a no-op.
    """
    if len(value) > limits.max_keys:
        raise _metadata_error("metadata", f"at most {limits.max_keys} top-level keys allowed")
    if found := _violation(value, 1, limits):
        raise _metadata_error("metadata" + found[0], found[1])
    encoded = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
    if (b".0" in encoded or b"e+" in encoded) and _has_whole_float(value):  # bytes test first: cheap
        encoded = orjson.dumps(_whole_floats_as_ints(value), option=orjson.OPT_SORT_KEYS)
    if len(encoded) > limits.max_bytes:
        raise _metadata_error("metadata", f"serialized size {len(encoded)} exceeds {limits.max_bytes} bytes")
    return encoded


def _has_whole_float(value: Any) -> bool:
    if isinstance(value, float):
        return value.is_integer()
    if isinstance(value, dict):
        return any(_has_whole_float(item) for item in value.values())
    if isinstance(value, list):
        return any(_has_whole_float(item) for item in value)
    return False


def _whole_floats_as_ints(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)  # in range: _violation checked it
    if isinstance(value, dict):
        return {key: _whole_floats_as_ints(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_whole_floats_as_ints(item) for item in value]
    return value


def _violation(value: Any, depth: int, limits: MetadataLimits) -> tuple[str, str] | None:
    """The first limit ``value`` breaks: (its path below ``value``, the message), or None. Paths are
    built only on the way out of a violation, not for every value checked."""
    if isinstance(value, dict):
        if depth > limits.max_depth:
            return "", f"nesting deeper than {limits.max_depth} levels"
        for key, item in value.items():
            if not 1 <= len(key) <= limits.max_key_length:
                return f".{key}", f"keys must be 1-{limits.max_key_length} characters"
            if item is not None and type(item) is not str and (found := _violation(item, depth + 1, limits)):
                return f".{key}{found[0]}", found[1]
    elif isinstance(value, list):
        if depth > limits.max_depth:
            return "", f"nesting deeper than {limits.max_depth} levels"
        for index, item in enumerate(value):
            if item is not None and type(item) is not str and (found := _violation(item, depth + 1, limits)):
                return f"[{index}]{found[0]}", found[1]
    elif isinstance(value, float) and not math.isfinite(value):
        return "", "numbers must be finite"
    elif isinstance(value, int | float) and not isinstance(value, bool) and not NUMBER_MIN <= value <= NUMBER_MAX:
        return "", "number out of the 64-bit integer range"
    return None


def _metadata_error(path: str, message: str) -> InvalidMetadata:
    return InvalidMetadata.for_fields({path: message})


def metadata_json_schema(limits: MetadataLimits) -> dict[str, dict[str, Any]]:
    """JSON Schema definitions for metadata under ``limits``, as far as JSON Schema can say them: key
    count and key lengths, nesting depth (one definition per level), the number range. The serialized
    size limit is checked but cannot be expressed. Returns ``$defs``; the entry point is "Metadata"."""
    scalar = {
        "anyOf": [
            {"type": "string"},
            {"type": "number", "minimum": NUMBER_MIN, "maximum": NUMBER_MAX},
            {"type": "boolean"},
            {"type": "null"},
        ]
    }
    keys = {"minLength": 1, "maxLength": limits.max_key_length}
    defs: dict[str, dict[str, Any]] = {"MetadataScalar": scalar}
    ref = "#/components/schemas/{}".format
    for depth in range(limits.max_depth, 0, -1):
        child = ref(f"MetadataValue{depth + 1}") if depth < limits.max_depth else ref("MetadataScalar")
        obj: dict[str, Any] = {"type": "object", "propertyNames": keys, "additionalProperties": {"$ref": child}}
        if depth == 1:
            defs["Metadata"] = {
                **obj,
                "maxProperties": limits.max_keys,
                "description": f"JSON object; nesting at most {limits.max_depth} levels, "
                f"at most {limits.max_bytes} bytes serialized",
            }
        else:
            defs[f"MetadataValue{depth}"] = {
                "anyOf": [{"$ref": ref("MetadataScalar")}, obj, {"type": "array", "items": {"$ref": child}}]
            }
    return defs
