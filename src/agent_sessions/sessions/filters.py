"""``metadata_filter``: the expression language of session lists and counts, parsed into a program the
list script (``redis/lua/sessions_find.lua``) evaluates against each session's metadata.

Grammar (keywords are case-insensitive)::

    expr      := term ("OR" term)*
    term      := factor ("AND" factor)*
    factor    := "NOT" factor | "(" expr ")" | predicate
    predicate := path ("=" | "!=" | "<>" | "<" | "<=" | ">" | ">=") literal
               | path ["NOT"] "IN" "(" literal ("," literal)* ")"
               | path "IS" ["NOT"] "NULL"
    path      := name ("." name)*        name: [A-Za-z_][A-Za-z0-9_-]*
               | '"' name-or-anything ("." …)* '"'   a quoted path: dots separate levels
    literal   := 'single-quoted string' ('' is a quote) | number | TRUE | FALSE

A path names a value under ``metadata`` (``"profile.country"`` is ``metadata.profile.country``).

Truth follows SQL (and so Vectara, whose filters are SQL): a comparison whose value is absent, null, an
object or array, or of another type than the literal (``tier = '2'`` against ``2``) is *unknown*;
``NOT`` unknown is unknown; ``AND``/``OR`` are Kleene's; a session matches only when the whole
expression is true. So ``priority != 'urgent'`` does not match sessions without a priority, and
``priority IS NULL`` does. Strings compare by code point; ``<``, ``<=``, ``>``, ``>=`` compare numbers
with numbers and strings with strings; booleans only compare for (in)equality. Numbers are compared as
IEEE doubles (integers beyond 2^53 lose precision, as in JavaScript).

Anything the parser does not understand is an error naming the position (``at 14: …``): a filter is
never silently ignored, in part or whole. Bounds: at most ``MAX_CHARS`` characters, ``MAX_TERMS``
predicates, ``MAX_IN`` values in one ``IN``, ``MAX_DEPTH`` nested parentheses or ``NOT``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from agent_sessions.errors import InvalidRequest
from agent_sessions.sessions.models import NUMBER_MAX, NUMBER_MIN

MAX_CHARS = 1000  # characters; as percent-encoded UTF-8 in a URL, within the 16 KiB request head
MAX_TERMS = 32
MAX_IN = 100
MAX_DEPTH = 16
MAX_INDEXED_IN = 10  # an IN with more values scans instead of merging that many indexes

Value = str | float | int | bool
# ["and", p, q] | ["or", p, q] | ["not", p] | ["cmp", op, path, v] | ["in", path, [v, ...]] | ["null", path]
Program = list[Any]

_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>'(?:[^']|'')*')
  | (?P<quoted>"[^"]*")
  | (?P<number>-?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
  | (?P<op><=|>=|!=|<>|=|<|>)
  | (?P<punct>[(),.])
  | (?P<name>[A-Za-z_][A-Za-z0-9_-]*)
    """,
    re.VERBOSE,
)
KEYWORDS = {"AND", "OR", "NOT", "IN", "IS", "NULL", "TRUE", "FALSE"}


@dataclass(frozen=True)
class Token:
    kind: str  # string, quoted, number, op, punct, name, keyword, end
    text: str
    at: int  # 1-based character position in the expression


class FilterError(InvalidRequest):
    """A malformed expression: 400 invalid_request with ``metadata_filter: at N: …``."""

    @classmethod
    def at(cls, position: int, message: str) -> FilterError:
        return cls.for_fields({"metadata_filter": f"at {position}: {message}"})


def _tokens(text: str) -> list[Token]:
    tokens, i = [], 0
    while i < len(text):
        match = _TOKEN.match(text, i)
        if match is None:
            if text[i] in "'\"":
                raise FilterError.at(i + 1, "unterminated quote")
            raise FilterError.at(i + 1, f"unexpected character {text[i]!r}")
        kind = match.lastgroup or ""
        value = match.group()
        if kind == "name" and value.upper() in KEYWORDS:
            kind = "keyword"
        if kind != "space":
            tokens.append(Token(kind, value, i + 1))
        i = match.end()
    tokens.append(Token("end", "", len(text) + 1))
    return tokens


def _describe(token: Token) -> str:
    return "the end of the expression" if token.kind == "end" else repr(token.text)


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.i = 0
        self.terms = 0
        self.depth = 0

    @property
    def peek(self) -> Token:
        return self.tokens[self.i]

    def take(self) -> Token:
        token = self.tokens[self.i]
        self.i += 1
        return token

    def keyword(self, word: str) -> bool:
        if self.peek.kind == "keyword" and self.peek.text.upper() == word:
            self.i += 1
            return True
        return False

    def expect(self, kind: str, text: str, what: str) -> Token:
        token = self.take()
        if token.kind != kind or token.text.upper() != text:
            raise FilterError.at(token.at, f"expected {what}, found {_describe(token)}")
        return token

    def nested(self, token: Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise FilterError.at(token.at, f"more than {MAX_DEPTH} levels of NOT and parentheses")

    def expression(self) -> Program:
        node = self.term()
        while self.keyword("OR"):
            node = ["or", node, self.term()]
        return node

    def term(self) -> Program:
        node = self.factor()
        while self.keyword("AND"):
            node = ["and", node, self.factor()]
        return node

    def factor(self) -> Program:
        token = self.peek
        if self.keyword("NOT"):
            self.nested(token)
            node = ["not", self.factor()]
            self.depth -= 1
            return node
        if token.kind == "punct" and token.text == "(":
            self.take()
            self.nested(token)
            node = self.expression()
            self.expect("punct", ")", "')'")
            self.depth -= 1
            return node
        return self.predicate()

    def predicate(self) -> Program:
        start = self.peek
        path = self.path()
        self.terms += 1
        if self.terms > MAX_TERMS:
            raise FilterError.at(start.at, f"more than {MAX_TERMS} conditions")
        token = self.take()
        if token.kind == "op":
            op = "!=" if token.text == "<>" else token.text
            return ["cmp", op, path, self.literal()]
        if token.kind == "keyword" and token.text.upper() == "IS":
            negated = self.keyword("NOT")
            self.expect("keyword", "NULL", "NULL")
            return ["not", ["null", path]] if negated else ["null", path]
        negated = token.kind == "keyword" and token.text.upper() == "NOT"
        if negated:
            token = self.take()
        if token.kind == "keyword" and token.text.upper() == "IN":
            node: Program = ["in", path, self.values()]
            return ["not", node] if negated else node
        raise FilterError.at(token.at, f"expected a comparison, IN or IS after the path, found {_describe(token)}")

    def path(self) -> list[str]:
        token = self.take()
        if token.kind == "quoted":
            parts = token.text[1:-1].split(".")
            if not all(parts):
                raise FilterError.at(token.at, "a quoted path needs a name on each side of every '.'")
            return parts
        if token.kind != "name":
            raise FilterError.at(token.at, f"expected a metadata path, found {_describe(token)}")
        parts = [token.text]
        while self.peek.kind == "punct" and self.peek.text == ".":
            self.take()
            part = self.take()
            if part.kind not in ("name", "keyword"):
                raise FilterError.at(part.at, f"expected a name after '.', found {_describe(part)}")
            parts.append(part.text)
        return parts

    def values(self) -> list[Value]:
        self.expect("punct", "(", "'(' after IN")
        values = [self.literal()]
        while self.peek.kind == "punct" and self.peek.text == ",":
            self.take()
            values.append(self.literal())
            if len(values) > MAX_IN:
                raise FilterError.at(self.peek.at, f"more than {MAX_IN} values in IN")
        self.expect("punct", ")", "')' or ',' in the IN list")
        return values

    def literal(self) -> Value:
        token = self.take()
        if token.kind == "string":
            return token.text[1:-1].replace("''", "'")
        if token.kind == "number":
            number = float(token.text)
            if number != number or number in (float("inf"), float("-inf")):
                raise FilterError.at(token.at, "number out of range")
            if not token.text.lstrip("-").isdigit():
                return number
            whole = int(token.text)
            if not NUMBER_MIN <= whole <= NUMBER_MAX:  # metadata holds no number outside this range
                raise FilterError.at(token.at, "integer out of the 64-bit range")
            return whole
        if token.kind == "keyword" and token.text.upper() in ("TRUE", "FALSE"):
            return token.text.upper() == "TRUE"
        raise FilterError.at(token.at, f"expected a value ('text', a number, TRUE or FALSE), found {_describe(token)}")


def parse(text: str) -> Program:
    """The expression -> its program; ``FilterError`` (400) for anything else."""
    if len(text) > MAX_CHARS:
        raise FilterError.at(MAX_CHARS + 1, f"longer than {MAX_CHARS} characters")
    parser = _Parser(text)
    if parser.peek.kind == "end":
        raise FilterError.at(1, "empty expression")
    program = parser.expression()
    if parser.peek.kind != "end":
        raise FilterError.at(parser.peek.at, f"expected AND, OR or the end, found {_describe(parser.peek)}")
    return program


def conjuncts(program: Program) -> list[Program]:
    """The parts that must all be true: ``a AND (b AND c)`` -> [a, b, c]."""
    if program[0] == "and":
        return conjuncts(program[1]) + conjuncts(program[2])
    return [program]


def index_values(condition: Program, dimensions: tuple[str, ...], max_bytes: int) -> tuple[str, list[str]] | None:
    """(dimension, values) when ``condition`` is true only for sessions whose string value of a report
    dimension is one of ``values`` (``d = 'x'`` or ``d IN ('x', 'y')``), so the dimension's index
    holds every session it can match; else None (also for an IN of more than MAX_INDEXED_IN values:
    walking that many indexes at once costs more than a scan)."""
    if condition[0] == "cmp" and condition[1] == "=":
        _, _, path, value = condition
        values = [value]
    elif condition[0] == "in":
        _, path, values = condition
    else:
        return None
    if len(path) != 1 or path[0] not in dimensions:
        return None
    if len(values) > MAX_INDEXED_IN or not all(isinstance(v, str) and len(v.encode()) <= max_bytes for v in values):
        return None
    return path[0], list(dict.fromkeys(values))
