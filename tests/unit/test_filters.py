"""The metadata_filter parser on its own (no Redis): the program each expression becomes, the error
each malformed one gets (with its position), its bounds, and which conditions an index can answer.
What the programs mean against stored sessions is tested through Redis (test_session_search.py)."""

from __future__ import annotations

import pytest

from agent_sessions.sessions import filters
from agent_sessions.sessions.filters import FilterError, conjuncts, index_values, parse


def error(text: str) -> str:
    with pytest.raises(FilterError) as caught:
        parse(text)
    message: str = caught.value.field_errors["metadata_filter"]
    return message


@pytest.mark.parametrize(
    ("text", "program"),
    [
        ("priority = 'urgent'", ["cmp", "=", ["priority"], "urgent"]),
        ("tier <> 2", ["cmp", "!=", ["tier"], 2]),
        ("score >= -1.5e2", ["cmp", ">=", ["score"], -150.0]),
        ("vip = TRUE", ["cmp", "=", ["vip"], True]),
        ("note = 'it''s'", ["cmp", "=", ["note"], "it's"]),
        ("profile.country = 'FR'", ["cmp", "=", ["profile", "country"], "FR"]),
        ('"odd name.in" = 1', ["cmp", "=", ["odd name", "in"], 1]),
        ("a.in = 1", ["cmp", "=", ["a", "in"], 1]),  # a keyword is a name after a dot
        ("channel IN ('chat', 'mail')", ["in", ["channel"], ["chat", "mail"]]),
        ("channel NOT IN ('chat')", ["not", ["in", ["channel"], ["chat"]]]),
        ("owner IS NULL", ["null", ["owner"]]),
        ("owner is not null", ["not", ["null", ["owner"]]]),
    ],
)
def test_each_predicate_becomes_its_program(text: str, program: list[object]) -> None:
    assert parse(text) == program


def test_and_binds_tighter_than_or_and_parentheses_and_not_nest() -> None:
    a, b, c = (["cmp", "=", [name], 1] for name in "abc")
    assert parse("a = 1 OR b = 1 AND c = 1") == ["or", a, ["and", b, c]]
    assert parse("(a = 1 OR b = 1) AND c = 1") == ["and", ["or", a, b], c]
    assert parse("NOT NOT a = 1") == ["not", ["not", a]]
    assert parse("a = 1 and b = 1 And c = 1") == ["and", ["and", a, b], c]  # keywords in any case


@pytest.mark.parametrize(
    ("text", "position", "says"),
    [
        ("", 1, "empty expression"),
        ("priority = 'urgent", 12, "unterminated quote"),
        ("priority = 'a' ; x", 16, "unexpected character ';'"),
        ("priority 'a'", 10, "expected a comparison, IN or IS"),
        ("priority = ", 12, "expected a value"),
        ("= 'a'", 1, "expected a metadata path"),
        ("a = 1 b = 2", 7, "expected AND, OR or the end"),
        ("(a = 1", 7, "expected ')'"),
        ("a IN 1", 6, "expected '(' after IN"),
        ("a IS 1", 6, "expected NULL"),
        ('"a..b" = 1', 1, "a name on each side of every '.'"),
        ("a. = 1", 4, "expected a name after '.'"),
        ("a = 1e999", 5, "number out of range"),
        ("a = 99999999999999999999", 5, "64-bit range"),
    ],
)
def test_a_malformed_expression_is_refused_at_its_position(text: str, position: int, says: str) -> None:
    message = error(text)
    assert message.startswith(f"at {position}: ") and says in message


def test_the_bounds_are_refused_not_truncated() -> None:
    assert "longer than" in error("a = 1 OR " * 200)
    many = " OR ".join(f"a{i} = 1" for i in range(filters.MAX_TERMS + 1))
    assert f"more than {filters.MAX_TERMS} conditions" in error(many)
    values = ", ".join(str(i) for i in range(filters.MAX_IN + 1))
    assert f"more than {filters.MAX_IN} values" in error(f"a IN ({values})")
    deep = "NOT " * (filters.MAX_DEPTH + 1) + "a = 1"
    assert f"more than {filters.MAX_DEPTH} levels" in error(deep)
    assert parse("NOT " * filters.MAX_DEPTH + "a = 1")  # the bound itself is allowed


def test_conjuncts_flatten_only_and() -> None:
    program = parse("a = 1 AND (b = 2 AND c = 3)")
    assert [p[2] for p in conjuncts(program)] == [["a"], ["b"], ["c"]]
    assert conjuncts(parse("a = 1 OR b = 2")) == [parse("a = 1 OR b = 2")]


def test_an_index_answers_equality_and_short_in_lists_of_its_dimensions() -> None:
    dims = ("priority", "channel")
    assert index_values(parse("priority = 'urgent'"), dims, 128) == ("priority", ["urgent"])
    assert index_values(parse("channel IN ('a', 'b', 'a')"), dims, 128) == ("channel", ["a", "b"])
    assert index_values(parse("tier = 'x'"), dims, 128) is None  # not a dimension
    assert index_values(parse("priority = 2"), dims, 128) is None  # indexes hold strings only
    assert index_values(parse("priority != 'x'"), dims, 128) is None
    assert index_values(parse("priority = 'long'"), dims, 3) is None  # longer than the indexed values
    wide = ", ".join(f"'v{i}'" for i in range(filters.MAX_INDEXED_IN + 1))
    assert index_values(parse(f"channel IN ({wide})"), dims, 128) is None
