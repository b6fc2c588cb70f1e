"""JSON Merge Patch (RFC 7396) against a reference written from the RFC's pseudocode."""

from __future__ import annotations

from typing import Any

from hypothesis import given

from agent_sessions.sessions.services import merge_patch
from tests.support.merge_patch import json_objects, reference_merge_patch


@given(json_objects, json_objects)
def test_matches_the_rfc(target: dict[str, Any], patch: dict[str, Any]) -> None:
    assert merge_patch(target, patch) == reference_merge_patch(target, patch)


@given(json_objects, json_objects)
def test_does_not_mutate_its_inputs(target: dict[str, Any], patch: dict[str, Any]) -> None:
    import copy

    before_target, before_patch = copy.deepcopy(target), copy.deepcopy(patch)
    merge_patch(target, patch)
    assert (target, patch) == (before_target, before_patch)


def test_rfc_7396_appendix_a_examples() -> None:
    cases = [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
    ]
    for target, patch, result in cases:
        assert merge_patch(target, patch) == result
