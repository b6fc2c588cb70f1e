"""Escalation rules: when an update of a session escalates, and which rule says so.

A rule watches one value, a dotted ``path`` under ``metadata`` (``metadata.tier``,
``metadata.customer.plan``), and fires on an update when either

- ``becomes``: the value after the update is one of the listed values and the value before was not, or
- ``changes: true``: the value after the update is present and differs from the value before.

A value that disappears (absent after the update) never fires a rule: that is a de-escalation. Values
compare as JSON values: ``1`` and ``1.0`` are equal, ``1`` and ``"1"`` or ``true`` are not.

An agent with rules of its own (``PUT /v2/agents/{agent_key}/escalation_rules``) uses only those; any
other agent uses the defaults built from the settings ``ESCALATE_WHEN_BECOMES`` and
``ESCALATE_WHEN_CHANGES``, one rule per metadata key, named after the key. Bounds: at most
``MAX_RULES`` rules per agent, ``MAX_VALUES`` values per ``becomes``, paths of at most ``MAX_DEPTH``
keys below ``metadata``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any, NotRequired

import orjson
from pydantic import ConfigDict, Field, StringConstraints, with_config
from pydantic.config import JsonDict
from typing_extensions import TypedDict

from agent_sessions.errors import InvalidRequest
from agent_sessions.sessions.models import Metadata

MAX_RULES = 32
MAX_VALUES = 32
MAX_DEPTH = 5
RULE_NAME_PATTERN = "^[A-Za-z0-9_.-]{1,64}$"
PATH_PATTERN = rf"^metadata(\.[^.]{{1,64}}){{1,{MAX_DEPTH}}}$"
_ABSENT: Any = object()

_STRICT = ConfigDict(extra="forbid", strict=True)
# Numbers are finite: NaN, Infinity and 1e400 (which JSON parsers read as infinity) are refused.
Scalar = Annotated[str, StringConstraints(max_length=1024)] | int | Annotated[float, Field(allow_inf_nan=False)] | bool


# Exactly one of `becomes` or `changes: true` (stated for /openapi.json; ``from_body`` enforces it).
ONE_KIND: JsonDict = {
    "oneOf": [{"required": ["becomes"]}, {"required": ["changes"], "properties": {"changes": {"const": True}}}]
}


@with_config(ConfigDict(extra="forbid", strict=True, json_schema_extra=ONE_KIND))
class RuleBody(TypedDict):
    name: Annotated[str, StringConstraints(pattern=RULE_NAME_PATTERN)]
    path: Annotated[str, StringConstraints(pattern=PATH_PATTERN, max_length=512)]
    becomes: NotRequired[Annotated[list[Scalar], Field(min_length=1, max_length=MAX_VALUES)]]
    changes: NotRequired[bool]


@with_config(_STRICT)
class RulesBody(TypedDict):
    rules: Annotated[list[RuleBody], Field(max_length=MAX_RULES)]


@with_config(_STRICT)
class RulesTestBody(TypedDict):
    old: Metadata
    new: Metadata


class Fired(TypedDict):
    fired: list[str]


class AgentRules(TypedDict):
    agent_key: str
    rules: list[RuleBody]
    source: str  # "agent": its own rules; "settings": the defaults


@dataclass(frozen=True)
class Rule:
    name: str
    path: tuple[str, ...]  # below metadata
    becomes: tuple[Any, ...] = ()
    changes: bool = False

    def fires(self, before: Metadata, after: Metadata) -> bool:
        new, old = _lookup(after, self.path), _lookup(before, self.path)
        if new is _ABSENT:
            return False
        if self.changes:
            return not _same(new, old)
        return _member(new, self.becomes) and not _member(old, self.becomes)

    def body(self) -> RuleBody:
        rule: RuleBody = {"name": self.name, "path": ".".join(("metadata", *self.path))}
        if self.changes:
            rule["changes"] = True
        else:
            rule["becomes"] = list(self.becomes)
        return rule


@dataclass(frozen=True)
class Rules:
    rules: tuple[Rule, ...]

    def fired(self, before: Metadata, after: Metadata) -> list[str]:
        """The names of the rules this change fires, in the rules' order."""
        return [rule.name for rule in self.rules if rule.fires(before, after)]

    def body(self) -> list[RuleBody]:
        return [rule.body() for rule in self.rules]

    def encode(self) -> bytes:
        return orjson.dumps(self.body())


def from_body(rules: list[RuleBody]) -> Rules:
    """Validated body rules -> ``Rules``; a rule that is neither ``becomes`` nor ``changes: true``, or a
    repeated name, is 400 naming the field."""
    errors: dict[str, str] = {}
    seen: set[str] = set()
    made = []
    for i, rule in enumerate(rules):
        has_becomes, changes = "becomes" in rule, rule.get("changes", False)
        if has_becomes == changes:
            errors[f"rules.{i}"] = "give exactly one of becomes (a list of values) or changes: true"
        if rule["name"] in seen:
            errors[f"rules.{i}.name"] = "names must be unique within an agent's rules"
        seen.add(rule["name"])
        path = tuple(rule["path"].split(".")[1:])
        made.append(Rule(rule["name"], path, tuple(rule.get("becomes", ())), changes))
    if errors:
        raise InvalidRequest.for_fields(errors)
    return Rules(tuple(made))


def decode(stored: bytes | str) -> Rules:
    """Rules as ``Rules.encode`` stored them (already validated when they were put)."""
    return from_body(orjson.loads(stored))


def defaults(becomes: tuple[tuple[str, str], ...], changes: tuple[str, ...]) -> Rules:
    """The settings' rules: one per metadata key, named after it (``priority``: becomes urgent)."""
    values: dict[str, list[str]] = {}
    for key, value in becomes:
        values.setdefault(key, []).append(value)
    made = [Rule(key, (key,), tuple(listed)) for key, listed in values.items()]
    made += [Rule(key, (key,), changes=True) for key in changes if key not in values]
    return Rules(tuple(made))


def _lookup(metadata: Metadata, path: tuple[str, ...]) -> Any:
    value: Any = metadata
    for key in path:
        if not isinstance(value, dict) or key not in value:
            return _ABSENT
        value = value[key]
    return value


def _same(a: Any, b: Any) -> bool:
    """JSON equality: bools are not numbers, 1 equals 1.0, containers compare by value."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    return type(a) is type(b) and a == b


def _member(value: Any, listed: tuple[Any, ...]) -> bool:
    return value is not _ABSENT and any(_same(value, candidate) for candidate in listed)
