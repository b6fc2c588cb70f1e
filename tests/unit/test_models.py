"""Body parsing and metadata limits: pure functions, no Redis."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agent_sessions.errors import InvalidMetadata, InvalidRequest
from agent_sessions.sessions.models import MetadataLimits, SessionPatch, encode_metadata, parse_body

LIMITS = MetadataLimits()


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": 1}
    for _ in range(depth - 1):
        value = {"k": value}
    return value


@pytest.mark.parametrize(
    ("raw", "fields"),
    [
        (b'{"description": null}', {"description"}),
        (b'{"enabled": "true"}', {"enabled"}),
        (b'{"enabled": 1}', {"enabled"}),
        (b'{"description": 5}', {"description"}),
        (b'{"id": "ase_x"}', {"id"}),
        (b'{"created_at": "2024-01-15T10:30:00Z"}', {"created_at"}),
        (b'{"version": 3}', {"version"}),
        (b'{"name": "renamed"}', {"name"}),
    ],
)
def test_patch_rejects_wrong_types_and_unknown_or_read_only_fields(raw: bytes, fields: set[str]) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_body(SessionPatch, raw)
    assert info.value.code == "invalid_request"
    assert set(info.value.field_errors) == fields


@pytest.mark.parametrize("raw", [b"", b"nope", b"[1, 2]", b'"text"', b"null", b"{", b'{"a":1}{'])
def test_patch_rejects_bodies_that_are_not_json_objects(raw: bytes) -> None:
    with pytest.raises(InvalidRequest) as info:
        parse_body(SessionPatch, raw)
    assert info.value.code == "invalid_request"
    assert not isinstance(info.value, InvalidMetadata)


def test_patch_keeps_only_sent_fields() -> None:
    assert parse_body(SessionPatch, b"{}") == {}
    assert parse_body(SessionPatch, b'{"enabled": false}') == {"enabled": False}


@pytest.mark.parametrize("raw", [b'{"metadata": [1]}', b'{"metadata": "x"}', b'{"metadata": null}'])
def test_metadata_that_is_not_an_object_is_invalid_metadata(raw: bytes) -> None:
    with pytest.raises(InvalidMetadata) as info:
        parse_body(SessionPatch, raw)
    assert info.value.field_errors == {"metadata": "Input should be an object"}


def test_json_bombs_are_invalid_requests() -> None:
    deep = b'{"metadata": {"a": ' + b"[" * 10_000 + b"]" * 10_000 + b"}}"
    huge_int = b'{"metadata": {"a": ' + b"9" * 20_000 + b"}}"
    for raw in (deep, huge_int):
        with pytest.raises(InvalidRequest):
            parse_body(SessionPatch, raw)


@pytest.mark.parametrize(
    ("metadata", "path"),
    [
        ({f"k{i}": i for i in range(65)}, "metadata"),
        ({"": 1}, "metadata."),
        ({"x" * 65: 1}, "metadata." + "x" * 65),
        ({"a": {"b" * 65: 1}}, "metadata.a." + "b" * 65),
        (nested(6), "metadata.k.k.k.k.k"),
        ({"a": [[[[[1]]]]]}, "metadata.a[0][0][0][0]"),
        ({"big": "x" * 16_400}, "metadata"),
        ({"n": float("inf")}, "metadata.n"),
        ({"n": float("nan")}, "metadata.n"),
        ({"n": 2**63}, "metadata.n"),
        ({"list": [1, {"n": -(2**63) - 1}]}, "metadata.list[1].n"),
    ],
)
def test_metadata_limits_name_the_offending_path(metadata: dict[str, Any], path: str) -> None:
    with pytest.raises(InvalidMetadata) as info:
        encode_metadata(metadata, LIMITS)
    assert list(info.value.field_errors) == [path]
    assert info.value.messages[0].startswith(path + ":")


def test_metadata_at_the_limits_is_accepted() -> None:
    encode_metadata({f"k{i}": i for i in range(64)}, LIMITS)
    encode_metadata({"x" * 64: 2**63 - 1}, LIMITS)
    encode_metadata(nested(5), LIMITS)
    encode_metadata({"big": "x" * (16 * 1024 - 12)}, LIMITS)


def test_limits_come_from_settings() -> None:
    tight = MetadataLimits(max_keys=2, max_key_length=3, max_depth=2, max_bytes=30)
    encode_metadata({"a": {"b": 1}, "c": 2}, tight)
    for bad in ({"a": 1, "b": 2, "c": 3}, {"abcd": 1}, {"a": {"b": {"c": 1}}}, {"a": "x" * 30}):
        with pytest.raises(InvalidMetadata):
            encode_metadata(bad, tight)


def test_canonical_form_ignores_key_order() -> None:
    assert encode_metadata({"b": 1, "a": {"d": 2, "c": 3}}, LIMITS) == b'{"a":{"c":3,"d":2},"b":1}'


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(min_size=1, max_size=8), children, max_size=3)
    ),
    max_leaves=12,
)


@given(st.dictionaries(st.text(min_size=1, max_size=10), json_values, max_size=8))
def test_accepted_metadata_round_trips_exactly(metadata: dict[str, Any]) -> None:
    try:
        encoded = encode_metadata(metadata, LIMITS)
    except InvalidMetadata:
        return  # over a limit (depth); rejection is covered above
    assert orjson.loads(encoded) == metadata
