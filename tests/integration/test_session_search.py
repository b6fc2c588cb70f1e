"""metadata_filter, sort and /sessions/count through the app on a real Redis, checked against a
brute-force oracle written here (not the service's parser or evaluator): SQL's three-valued logic over
the metadata each session was created with."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from agent_sessions.access.auth import Role
from agent_sessions.access.store import Keyring
from agent_sessions.config import Settings
from agent_sessions.redis.server import RedisServer
from agent_sessions.sessions.purge import Purger
from agent_sessions.web.app import create_app
from tests.support.api import error
from tests.support.keys import KEYS

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

AGENT = "agt_search"
SESSIONS = f"/v2/agents/{AGENT}/sessions"

# -- the oracle --------------------------------------------------------------------------------------

MISSING = object()
Node = tuple[Any, ...]  # ("and"|"or", a, b) | ("not", a) | ("cmp", op, path, v) | ("in", path, vs) | ("null", path)


def lookup(metadata: Any, path: tuple[str, ...]) -> Any:
    for part in path:
        if not isinstance(metadata, dict) or part not in metadata:
            return MISSING
        metadata = metadata[part]
    return metadata


def kind(value: Any) -> str | None:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    return "string" if isinstance(value, str) else None


def compare(value: Any, op: str, literal: Any) -> bool | None:
    if value is MISSING or kind(value) is None or kind(value) != kind(literal):
        return None
    if op == "=":
        return bool(value == literal)
    if op == "!=":
        return bool(value != literal)
    if kind(value) == "bool":
        return None
    ordered: dict[str, bool] = {
        "<": value < literal,
        "<=": value <= literal,
        ">": value > literal,
        ">=": value >= literal,
    }
    return ordered[op]


def truth(node: Node, metadata: Any) -> bool | None:
    op = node[0]
    if op in ("and", "or"):
        a, b = truth(node[1], metadata), truth(node[2], metadata)
        decisive: bool = op == "or"
        if decisive in (a, b):
            return decisive
        return None if None in (a, b) else not decisive
    if op == "not":
        a = truth(node[1], metadata)
        return None if a is None else not a
    if op == "cmp":
        return compare(lookup(metadata, node[2]), str(node[1]), node[3])
    if op == "in":
        results = [compare(lookup(metadata, node[1]), "=", v) for v in node[2]]
        return True if True in results else None if None in results else False
    value = lookup(metadata, node[1])
    return value is MISSING or value is None


# -- generated data and expressions --------------------------------------------------------------------

STRINGS = ["urgent", "low", "Low", "", "it's", "zz", "ünï"]
SCALARS = st.one_of(
    st.sampled_from(STRINGS), st.integers(-3, 3), st.sampled_from([0.5, -1.5, 2.0]), st.booleans(), st.none()
)
METADATA = st.fixed_dictionaries(
    {},
    optional={
        "priority": st.one_of(st.sampled_from(["urgent", "low", "high"]), SCALARS),
        "channel": st.sampled_from(["web", "phone", "x" * 200]),
        "tier": SCALARS,
        "flag": SCALARS,
        "profile": st.one_of(
            st.fixed_dictionaries({}, optional={"country": st.sampled_from(["US", "FR", 1]), "age": SCALARS}),
            st.just([1, 2]),
        ),
    },
)
PATHS = st.sampled_from(
    [("priority",), ("channel",), ("tier",), ("flag",), ("profile", "country"), ("profile", "age"), ("nope",)]
)
LITERALS = st.one_of(st.sampled_from([*STRINGS, "urgent", "high", "web", "US"]), st.integers(-3, 3), st.booleans())
OPS = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])

PREDICATES = st.one_of(
    st.tuples(st.just("cmp"), OPS, PATHS, LITERALS),
    st.tuples(st.just("in"), PATHS, st.lists(LITERALS, min_size=1, max_size=3).map(tuple)),
    st.tuples(st.just("null"), PATHS),
)
EXPRESSIONS = st.recursive(
    PREDICATES,
    lambda inner: st.one_of(st.tuples(st.sampled_from(["and", "or"]), inner, inner), st.tuples(st.just("not"), inner)),
    max_leaves=6,
)


def render_literal(value: Any, rnd: random.Random) -> str:
    if isinstance(value, bool):
        return rnd.choice(["TRUE", "true", "True"]) if value else rnd.choice(["FALSE", "false"])
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


def render_path(path: tuple[str, ...], rnd: random.Random) -> str:
    dotted = ".".join(path)
    return f'"{dotted}"' if rnd.random() < 0.5 else dotted


def render(node: Node, rnd: random.Random) -> str:
    """The expression as text, in random keyword case and always parenthesised where it nests."""
    op = node[0]
    if op in ("and", "or"):
        word = rnd.choice([op.upper(), op])
        return f"({render(node[1], rnd)}) {word} ({render(node[2], rnd)})"
    if op == "not":
        return f"{rnd.choice(['NOT', 'not'])} ({render(node[1], rnd)})"
    if op == "cmp":
        symbol = "<>" if node[1] == "!=" and rnd.random() < 0.3 else node[1]
        return f"{render_path(node[2], rnd)} {symbol} {render_literal(node[3], rnd)}"
    if op == "in":
        values = ", ".join(render_literal(v, rnd) for v in node[2])
        return f"{render_path(node[1], rnd)} IN ({values})"
    return f"{render_path(node[1], rnd)} IS NULL"


# -- helpers -------------------------------------------------------------------------------------------


def make_sessions(client: TestClient, headers: dict[str, str], metadatas: list[dict[str, Any]]) -> dict[str, Any]:
    assert client.post("/v2/agents", json={"key": AGENT, "name": "search"}, headers=headers).status_code == 201
    sessions = {}
    for i, metadata in enumerate(metadatas):
        key = f"ase_{i:04d}"
        body = {"key": key, "metadata": metadata, "enabled": i % 3 != 0}
        assert client.post(SESSIONS, json=body, headers=headers).status_code == 201
        sessions[key] = body
    return sessions


def list_all(client: TestClient, headers: dict[str, str], limit: int, **params: Any) -> tuple[list[str], Any]:
    """Every page; the keys in order and the first page's total_count."""
    keys: list[str] = []
    query: dict[str, Any] = {"limit": limit, **params}
    total = MISSING
    for _ in range(1000):
        response = client.get(SESSIONS, params=query, headers=headers)
        assert response.status_code == 200, response.text
        body = response.json()
        keys += [s["id"] for s in body["sessions"]]
        total = body["metadata"]["total_count"] if total is MISSING else total
        if body["metadata"]["page_key"] is None:
            return keys, total
        query["page_key"] = body["metadata"]["page_key"]
    raise AssertionError("the pages never end")


def count_all(client: TestClient, headers: dict[str, str], **params: Any) -> int:
    count, query = 0, dict(params)
    for _ in range(1000):
        response = client.get(f"{SESSIONS}/count", params=query, headers=headers)
        assert response.status_code == 200, response.text
        count += int(response.json()["count"])
        if response.json()["page_key"] is None:
            return count
        query["page_key"] = response.json()["page_key"]
    raise AssertionError("the counts never end")


def found(client: TestClient, headers: dict[str, str], expression: str) -> list[str]:
    response = client.get(SESSIONS, params={"metadata_filter": expression}, headers=headers)
    return [s["id"] for s in response.json()["sessions"]]


def expected(sessions: dict[str, Any], node: Node, enabled: bool | None = None) -> list[str]:
    return [
        key
        for key, body in sorted(sessions.items())
        if truth(node, body["metadata"]) is True and (enabled is None or body["enabled"] == enabled)
    ]


# -- the property tests --------------------------------------------------------------------------------


@hsettings(max_examples=25)
@given(
    metadatas=st.lists(METADATA, max_size=25), nodes=st.lists(EXPRESSIONS, min_size=1, max_size=6), seed=st.integers()
)
def test_filters_agree_with_a_brute_force_oracle(
    redis_server: RedisServer, metadatas: list[dict[str, Any]], nodes: list[Node], seed: int
) -> None:
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as conn:
        conn.flushall()
        headers = {"x-api-key": Keyring(conn, KEYS).create(Role.ADMIN, (), rate=100_000.0, burst=100_000)[1]}
    rnd = random.Random(seed)
    with TestClient(create_app(Settings(redis_url=redis_server.url))) as client:
        sessions = make_sessions(client, headers, metadatas)
        for node in nodes:
            text = render(node, rnd)
            enabled = rnd.choice([None, True, False])
            params: dict[str, Any] = {"metadata_filter": text}
            if enabled is not None:
                params["enabled"] = str(enabled).lower()
            want = expected(sessions, node, enabled)
            keys, total = list_all(client, headers, rnd.randint(1, 7), **params)
            assert keys == want, text
            assert total == len(want), text  # few sessions: every request counts them all
            assert count_all(client, headers, **params) == len(want), text


@pytest.fixture(scope="module")
def many(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, dict[str, str], dict[str, Any]]]:
    """260 sessions with random metadata, on an app that examines at most 100 sessions per request."""
    server = RedisServer(tmp_path_factory.mktemp("redis-search")).start()
    try:
        conn = redis.Redis.from_url(server.url, decode_responses=True)
        headers = {"x-api-key": Keyring(conn, KEYS).create(Role.ADMIN, (), rate=100_000.0, burst=100_000)[1]}
        rnd = random.Random(7)
        metadatas = [random_metadata(rnd) for _ in range(260)]
        with TestClient(create_app(Settings(redis_url=server.url, filter_scan_max=100))) as client:
            sessions = make_sessions(client, headers, metadatas)
            for key, body in sessions.items():  # created_at to the millisecond (the API shows seconds)
                body["created_ms"] = int(conn.hget(KEYS.session(AGENT, key), "created_at") or 0)
            yield client, headers, sessions
        conn.close()
    finally:
        server.stop()


def random_metadata(rnd: random.Random) -> dict[str, Any]:
    scalars: list[Any] = [*STRINGS, -1, 0, 2, 0.5, True, False, None]
    metadata: dict[str, Any] = {}
    if rnd.random() < 0.8:
        metadata["priority"] = rnd.choice(["urgent", "low", "high", *scalars])
    if rnd.random() < 0.7:
        metadata["tier"] = rnd.choice(scalars)
    if rnd.random() < 0.5:
        metadata["profile"] = {"country": rnd.choice(["US", "FR", 1])}
    return metadata


@hsettings(max_examples=40)
@given(node=EXPRESSIONS, seed=st.integers())
def test_large_agents_are_scanned_in_bounded_steps_through_the_cursor(
    many: tuple[TestClient, dict[str, str], dict[str, Any]], node: Node, seed: int
) -> None:
    client, headers, sessions = many
    rnd = random.Random(seed)
    text = render(node, rnd)
    sort = rnd.choice(["key", "created_at", "-created_at", "-updated_at"])
    want = expected(sessions, node)
    if sort != "key":  # no session was changed: updated_at is created_at
        want.sort(key=lambda k: (sessions[k]["created_ms"], k), reverse=sort.startswith("-"))
    keys, total = list_all(client, headers, rnd.randint(1, 30), metadata_filter=text, sort=sort)
    assert keys == want, (text, sort)
    assert total in (None, len(want)), text  # 260 sessions > 100 examined: counted only through an index
    assert count_all(client, headers, metadata_filter=text) == len(want), text


def test_an_indexed_filter_counts_exactly_and_an_unindexed_one_says_it_did_not_count(
    many: tuple[TestClient, dict[str, str], dict[str, Any]],
) -> None:
    client, headers, sessions = many
    urgent = [k for k, b in sorted(sessions.items()) if b["metadata"].get("priority") == "urgent"]
    assert len(urgent) < 100 < len(sessions)
    body = client.get(SESSIONS, params={"metadata_filter": "priority = 'urgent'"}, headers=headers).json()
    assert body["metadata"]["total_count"] == len(urgent)
    assert [s["id"] for s in body["sessions"]] == urgent[:20]
    body = client.get(SESSIONS, params={"metadata_filter": "tier IS NULL", "limit": 100}, headers=headers).json()
    assert body["metadata"]["total_count"] is None and body["metadata"]["page_key"] is not None
    first = client.get(f"{SESSIONS}/count", params={"metadata_filter": "tier IS NULL"}, headers=headers).json()
    assert first["page_key"] is None  # ten steps of 100 cover 260 sessions


# -- sort -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sort", ["created_at", "-created_at", "updated_at", "-updated_at"])
def test_sorted_pages_follow_the_timestamps_and_a_change_moves_a_session(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis, sort: str
) -> None:
    make_sessions(client, admin, [{"n": i} for i in range(12)])
    for key in ("ase_0003", "ase_0007"):
        assert client.patch(f"{SESSIONS}/{key}", json={"description": "moved"}, headers=admin).status_code == 200
    field = sort.lstrip("-")
    stamps = {k: int(sync_redis.hget(KEYS.session(AGENT, k), field) or 0) for k in [f"ase_{i:04d}" for i in range(12)]}
    want = sorted(stamps, key=lambda k: (stamps[k], k), reverse=sort.startswith("-"))
    keys, total = list_all(client, admin, 5, sort=sort)
    assert keys == want and total == 12
    if field == "updated_at":
        assert set(keys[-2:] if not sort.startswith("-") else keys[:2]) == {"ase_0003", "ase_0007"}
    filtered, _ = list_all(client, admin, 2, sort=sort, metadata_filter="n >= 6")
    assert filtered == [k for k in want if int(k[-4:]) >= 6]


# -- the indexes follow every write ---------------------------------------------------------------------


def test_dimension_indexes_follow_creates_patches_deletes_and_purges(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis
) -> None:
    make_sessions(client, admin, [{"priority": "low"}, {"priority": "low"}, {"priority": "x" * 200}])
    urgent = KEYS.dimension_index(AGENT, "priority", "urgent")
    low = KEYS.dimension_index(AGENT, "priority", "low")
    assert sync_redis.zrange(low, 0, -1) == ["ase_0000", "ase_0001"]  # the long value is not indexed
    client.patch(f"{SESSIONS}/ase_0000", json={"metadata": {"priority": "urgent"}}, headers=admin)
    assert sync_redis.zrange(low, 0, -1) == ["ase_0001"] and sync_redis.zrange(urgent, 0, -1) == ["ase_0000"]
    assert [
        s["id"]
        for s in client.get(SESSIONS, params={"metadata_filter": "priority = 'low'"}, headers=admin).json()["sessions"]
    ] == ["ase_0001"]
    long_filter = {"metadata_filter": f"priority = '{'x' * 200}'"}
    assert [s["id"] for s in client.get(SESSIONS, params=long_filter, headers=admin).json()["sessions"]] == ["ase_0002"]
    client.patch(f"{SESSIONS}/ase_0000", json={"metadata": {}}, headers=admin)
    assert not sync_redis.exists(urgent)
    assert client.delete(f"{SESSIONS}/ase_0001", headers=admin).status_code == 204
    assert not sync_redis.exists(low)
    client.patch(f"{SESSIONS}/ase_0000", json={"metadata": {"priority": "low", "channel": "web"}}, headers=admin)
    merge = {**admin, "content-type": "application/merge-patch+json"}
    response = client.patch(f"{SESSIONS}/ase_0000", content=b'{"metadata": {"channel": "phone"}}', headers=merge)
    assert response.status_code == 200 and response.json()["metadata"] == {"priority": "low", "channel": "phone"}
    assert not sync_redis.exists(KEYS.dimension_index(AGENT, "channel", "web"))
    assert sync_redis.zrange(KEYS.dimension_index(AGENT, "channel", "phone"), 0, -1) == ["ase_0000"]
    assert sync_redis.zrange(low, 0, -1) == ["ase_0000"]
    assert client.delete(f"/v2/agents/{AGENT}", headers=admin).status_code == 204
    Purger(sync_redis, KEYS, dimensions=Settings().report_dimensions).step()
    assert [
        k for k in sync_redis.keys("as:*") if "idx" in k or "sessions:" in k or str(k).startswith("as:expiry:")
    ] == []


def stored_keys(conn: redis.Redis) -> list[str]:
    """Every key but the rate-limit buckets (which come and go with requests)."""
    return sorted(k for k in cast(list[str], conn.keys("*")) if not k.startswith("as:rl:"))


# -- bad input --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "message"),
    [
        ("priority = ", "at 12: expected a value"),
        ("priority == 'x'", "at 11: expected a value"),
        ("(priority = 'x'", "at 16: expected ')'"),
        ("priority = 'x", "at 12: unterminated quote"),
        ("priority ~ 'x'", "at 10: unexpected character '~'"),
        ("priority = 'x' tier", "at 16: expected AND, OR or the end"),
        ("priority LIKE 'x'", "at 10: expected a comparison, IN or IS"),
        ("priority IS 'x'", "at 13: expected NULL"),
        ('"a..b" = 1', "at 1: a quoted path needs a name"),
        ("", "at 1: empty expression"),
        ("a IN ()", "at 7: expected a value"),
        ("a = 1" + " AND a = 1" * 32, "more than 32 conditions"),
        ("NOT " * 20 + "a = 1", "more than 16 levels"),
        ("a = '" + "x" * 1000 + "'", "at 1001: longer than 1000 characters"),
        ("a IN (" + ", ".join(["1"] * 101) + ")", "more than 100 values in IN"),
    ],
)
def test_a_malformed_filter_is_400_saying_where_and_changes_nothing(
    client: TestClient, admin: dict[str, str], sync_redis: redis.Redis, expression: str, message: str
) -> None:
    make_sessions(client, admin, [{}])
    keys_before = stored_keys(sync_redis)
    for path in (SESSIONS, f"{SESSIONS}/count"):
        response = client.get(path, params={"metadata_filter": expression}, headers=admin)
        body = error(response, 400, "invalid_request")
        assert message in body["field_errors"]["metadata_filter"], body
    assert stored_keys(sync_redis) == keys_before


def test_bad_sorts_and_page_keys_are_400(client: TestClient, admin: dict[str, str]) -> None:
    make_sessions(client, admin, [{}])
    error(client.get(SESSIONS, params={"sort": "name"}, headers=admin), 400, "invalid_request")
    for page_key in ("x", "12.x", "12.", "1" * 17 + ".ase_1", "ase_" + "x" * 64):
        error(client.get(SESSIONS, params={"page_key": page_key}, headers=admin), 400, "invalid_request")
    # Either form of page key works in either order (a bare key: after that session's place).
    scored = client.get(SESSIONS, params={"sort": "-created_at", "page_key": "ase_0000"}, headers=admin)
    assert scored.status_code == 200 and scored.json()["sessions"] == []
    keyed = client.get(SESSIONS, params={"page_key": "12.ase_0000"}, headers=admin)
    assert keyed.status_code == 200 and keyed.json()["sessions"] == []
    error(client.get("/v2/agents/agt_none/sessions/count", headers=admin), 404, "agent_not_found")


def test_a_count_over_more_than_ten_steps_answers_in_parts_that_add_up(redis_server: RedisServer) -> None:
    """FILTER_SCAN_MAX 100: a count request examines at most 1,000 sessions, so 1,050 take two."""
    with redis.Redis.from_url(redis_server.url, decode_responses=True) as conn:
        conn.flushall()
        headers = {"x-api-key": Keyring(conn, KEYS).create(Role.ADMIN, (), rate=100_000.0, burst=100_000)[1]}
    with TestClient(create_app(Settings(redis_url=redis_server.url, filter_scan_max=100))) as client:
        make_sessions(client, headers, [{"n": i} for i in range(1050)])
        params = {"metadata_filter": "n >= 3"}
        first = client.get(f"{SESSIONS}/count", params=params, headers=headers).json()
        assert first["page_key"] is not None and first["count"] == 997  # of the first 1,000: n 3..999
        rest = client.get(f"{SESSIONS}/count", params={**params, "page_key": first["page_key"]}, headers=headers)
        assert rest.json() == {"count": 50, "page_key": None}
        assert count_all(client, headers, **params) == 1047


def test_a_filtered_total_count_is_exact_on_every_page(client: TestClient, admin: dict[str, str]) -> None:
    """300 sessions, 178 with tier >= 2 (no index for tier: every candidate is examined, 300 <= 1,000)."""
    assert client.post("/v2/agents", json={"key": AGENT, "name": "search"}, headers=admin).status_code == 201
    tiers = [0] * 122 + [2] * 100 + [3] * 78
    for n, tier in enumerate(tiers):
        body = {"key": f"ase_{n:03d}", "metadata": {"tier": tier}}
        assert client.post(SESSIONS, json=body, headers=admin).status_code == 201
    params: dict[str, Any] = {"metadata_filter": "tier >= 2", "limit": 100}
    seen: list[str] = []
    while True:
        page = client.get(SESSIONS, params=params, headers=admin).json()
        assert page["metadata"]["total_count"] == 178, (len(seen), page["metadata"])
        seen += [s["id"] for s in page["sessions"]]
        if page["metadata"]["page_key"] is None:
            break
        params["page_key"] = page["metadata"]["page_key"]
    assert len(seen) == 178 == len(set(seen))
    counted = client.get(f"{SESSIONS}/count", params={"metadata_filter": "tier >= 2"}, headers=admin).json()
    assert counted == {"count": 178, "page_key": None}
