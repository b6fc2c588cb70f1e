"""ETag / If-Match, JSON Merge Patch, Idempotency-Key and change history, over HTTP on real Redis."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.web.app import create_app
from tests.support import stream
from tests.support.api import SEED_AGENT, SEED_SESSION, MakeKey, error
from tests.support.keys import KEYS
from tests.support.merge_patch import json_objects, reference_merge_patch

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

URL = f"/v2/agents/{SEED_AGENT}/sessions/{SEED_SESSION}"
MERGE = {"content-type": "application/merge-patch+json"}


def patch(client: TestClient, headers: dict[str, str], body: Any, **extra: str) -> Any:
    return client.patch(URL, json=body, headers={**headers, **extra})


# -- ETag / If-Match ---------------------------------------------------------------------------------


def test_every_session_response_has_a_strong_etag(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    assert client.get(URL, headers=admin).headers["etag"] == '"1"'
    assert patch(client, admin, {"description": "x"}).headers["etag"] == '"2"'
    created = client.post(f"/v2/agents/{SEED_AGENT}/sessions", json={}, headers=admin)
    assert created.headers["etag"] == '"1"'


@pytest.mark.parametrize("if_match", ['"1"', '"7", "1"', "*"])
def test_matching_if_match_applies(client: TestClient, admin: dict[str, str], seeded: Any, if_match: str) -> None:
    response = patch(client, admin, {"description": "x"}, **{"if-match": if_match})
    assert response.status_code == 200 and response.json()["version"] == 2


@pytest.mark.parametrize(
    ("if_match", "says"),
    [
        ('"2"', 'If-Match "2" does not match the current version "1"'),
        ('W/"1"', 'weak tags (W/"1") never match'),
        ("1", '1 is not an entity tag of this API: send the version in double quotes, e.g. If-Match: "1"'),
        ("garbage", "garbage is not an entity tag"),
        ('"a"', '"a" is not an entity tag'),
    ],
)
def test_stale_or_weak_if_match_is_412_and_changes_nothing(
    client: TestClient, admin: dict[str, str], seeded: Any, sync_redis: redis.Redis, if_match: str, says: str
) -> None:
    outbox, history = stream.outbox_length(sync_redis), sync_redis.llen(KEYS.history(SEED_AGENT, SEED_SESSION))
    response = patch(client, admin, {"description": "x"}, **{"if-match": if_match})
    answer = error(response, 412, "precondition_failed")
    assert response.headers["etag"] == '"1"'  # the current version, to read again or retry with
    assert says in answer["messages"][0], answer
    assert client.get(URL, headers=admin).json() == seeded
    assert stream.outbox_length(sync_redis) == outbox
    assert sync_redis.llen(KEYS.history(SEED_AGENT, SEED_SESSION)) == history


def test_if_match_star_on_a_missing_session_is_404(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    missing = f"/v2/agents/{SEED_AGENT}/sessions/ase_missing"
    response = client.patch(missing, json={"enabled": False}, headers={**admin, "if-match": "*"})
    error(response, 404, "session_not_found")


def test_concurrent_read_modify_write_with_if_match_loses_no_update(redis_url: str, make_key: MakeKey) -> None:
    """Writers append to one list in metadata, each retrying on 412: every acknowledged append survives."""
    key = {"x-api-key": make_key("admin", rate=1e6, burst=10**6)}
    writers, appends = 6, 8
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=key)
        client.post(
            f"/v2/agents/{SEED_AGENT}/sessions", json={"key": SEED_SESSION, "metadata": {"log": []}}, headers=key
        )
        acknowledged: list[str] = []
        lock = threading.Lock()

        def writer(w: int) -> None:
            for n in range(appends):
                while True:
                    current = client.get(URL, headers=key)
                    log = [*current.json()["metadata"]["log"], f"{w}-{n}"]
                    response = client.patch(
                        URL, json={"metadata": {"log": log}}, headers={**key, "if-match": current.headers["etag"]}
                    )
                    if response.status_code == 200:
                        with lock:
                            acknowledged.append(f"{w}-{n}")
                        break
                    assert response.status_code == 412

        threads = [threading.Thread(target=writer, args=(w,)) for w in range(writers)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        final = client.get(URL, headers=key).json()
    assert len(acknowledged) == writers * appends
    assert sorted(final["metadata"]["log"]) == sorted(acknowledged)
    assert final["version"] == 1 + writers * appends


# -- JSON Merge Patch --------------------------------------------------------------------------------


def test_merge_patch_merges_metadata_and_null_deletes(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    patch(client, admin, {"metadata": {"customer": {"id": "c1", "tier": "gold"}, "priority": "high"}})
    body = {"metadata": {"customer": {"tier": None, "region": "eu"}, "channel": "phone"}, "enabled": False}
    response = patch(client, admin, body, **MERGE)
    assert response.status_code == 200
    session = response.json()
    assert session["metadata"] == {"customer": {"id": "c1", "region": "eu"}, "priority": "high", "channel": "phone"}
    assert session["enabled"] is False and session["version"] == 3


def test_plain_json_still_replaces_metadata(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    session = patch(client, admin, {"metadata": {"only": 1}}).json()
    assert session["metadata"] == {"only": 1}


def test_merged_result_obeys_the_limits(redis_url: str, make_key: MakeKey) -> None:
    key = {"x-api-key": make_key("admin")}
    with TestClient(create_app(Settings(redis_url=redis_url, metadata_max_keys=3))) as client:
        client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=key)
        client.post(
            f"/v2/agents/{SEED_AGENT}/sessions", json={"key": SEED_SESSION, "metadata": {"a": 1, "b": 2}}, headers=key
        )
        error(client.patch(URL, json={"metadata": {"c": 3, "d": 4}}, headers={**key, **MERGE}), 400, "invalid_metadata")
        merged = client.patch(URL, json={"metadata": {"a": None, "c": 3, "d": 4}}, headers={**key, **MERGE})
        assert merged.json()["metadata"] == {"b": 2, "c": 3, "d": 4}


def test_merge_patch_with_stale_if_match_is_412(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    stale = patch(client, admin, {"metadata": {"x": 1}}, **MERGE, **{"if-match": '"9"'})
    assert error(stale, 412, "precondition_failed")["messages"] == [
        'If-Match "9" does not match the current version "1"'
    ]
    assert stale.headers["etag"] == '"1"'
    assert patch(client, admin, {"metadata": {"x": 1}}, **MERGE, **{"if-match": '"1"'}).status_code == 200


def test_merge_patch_does_not_allow_null_for_plain_fields(
    client: TestClient, admin: dict[str, str], seeded: Any
) -> None:
    error(patch(client, admin, {"description": None}, **MERGE), 400, "invalid_request")


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=json_objects, change=json_objects)
def test_merge_patch_over_http_matches_rfc_7396(
    client: TestClient, admin: dict[str, str], seeded: Any, start: dict[str, Any], change: dict[str, Any]
) -> None:
    assert patch(client, admin, {"metadata": start}).status_code == 200
    response = patch(client, admin, {"metadata": change}, **MERGE)
    assert response.status_code == 200, response.text
    assert response.json()["metadata"] == reference_merge_patch(start, change)


# -- Idempotency-Key ---------------------------------------------------------------------------------


def test_retry_with_the_same_key_replays_and_applies_once(
    client: TestClient, admin: dict[str, str], seeded: Any, sync_redis: redis.Redis
) -> None:
    headers = {**admin, "idempotency-key": "retry-1"}
    first = client.patch(URL, json={"description": "once"}, headers=headers)
    events = stream.outbox_length(sync_redis)
    patch(client, admin, {"description": "someone else"})  # a later change by another request
    second = client.patch(URL, json={"description": "once"}, headers=headers)
    assert second.status_code == first.status_code == 200
    assert second.json() == first.json() and second.headers["etag"] == first.headers["etag"]
    assert second.headers["idempotent-replayed"] == "true" and "idempotent-replayed" not in first.headers
    assert stream.outbox_length(sync_redis) == events + 1  # only the other request's event
    assert 0 < sync_redis.ttl(next(iter(sync_redis.scan_iter("as:idem:*")))) <= 24 * 3600


def test_same_key_with_another_request_is_422(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    headers = {**admin, "idempotency-key": "k"}
    assert client.patch(URL, json={"description": "a"}, headers=headers).status_code == 200
    error(client.patch(URL, json={"description": "b"}, headers=headers), 422, "idempotency_key_reused")
    other_session = f"/v2/agents/{SEED_AGENT}/sessions/ase_other"
    error(client.patch(other_session, json={"description": "a"}, headers=headers), 422, "idempotency_key_reused")


def test_keys_are_per_api_key(client: TestClient, admin: dict[str, str], make_key: MakeKey, seeded: Any) -> None:
    other = {"x-api-key": make_key("editor"), "idempotency-key": "shared"}
    assert (
        client.patch(URL, json={"description": "a"}, headers={**admin, "idempotency-key": "shared"}).status_code == 200
    )
    response = client.patch(URL, json={"description": "b"}, headers=other)
    assert response.status_code == 200 and response.json()["description"] == "b"


def test_error_outcomes_are_replayed_too(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    headers = {**admin, "idempotency-key": "stale", "if-match": '"5"'}
    error(client.patch(URL, json={"description": "x"}, headers=headers), 412, "precondition_failed")
    response = client.patch(URL, json={"description": "x"}, headers=headers)
    error(response, 412, "precondition_failed")


def test_concurrent_requests_with_one_key_apply_once(
    redis_url: str, make_key: MakeKey, sync_redis: redis.Redis
) -> None:
    key = {"x-api-key": make_key("admin", rate=1e6, burst=10**6)}
    with TestClient(create_app(Settings(redis_url=redis_url))) as client:
        client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=key)
        client.post(f"/v2/agents/{SEED_AGENT}/sessions", json={"key": SEED_SESSION}, headers=key)
        results: list[Any] = []

        def send() -> None:
            r = client.patch(URL, json={"metadata": {"n": 1}}, headers={**key, "idempotency-key": "burst"})
            results.append((r.status_code, r.json()["version"]))

        threads = [threading.Thread(target=send) for _ in range(12)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(30)
    assert results == [(200, 2)] * 12
    assert sync_redis.hget(KEYS.session(SEED_AGENT, SEED_SESSION), "version") == "2"
    assert sync_redis.llen(KEYS.history(SEED_AGENT, SEED_SESSION)) == 2


def test_create_with_generated_key_is_replayed_not_duplicated(
    client: TestClient, admin: dict[str, str], seeded: Any
) -> None:
    url, headers = f"/v2/agents/{SEED_AGENT}/sessions", {**admin, "idempotency-key": "create-1"}
    first = client.post(url, json={"description": "new"}, headers=headers)
    second = client.post(url, json={"description": "new"}, headers=headers)
    assert first.status_code == second.status_code == 201
    assert first.json() == second.json()
    assert client.get(url, headers=admin).json()["metadata"]["total_count"] == 2  # the seed's + one


def test_bad_idempotency_key_is_400(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    error(client.patch(URL, json={}, headers={**admin, "idempotency-key": "x" * 256}), 400, "invalid_request")


# -- History -----------------------------------------------------------------------------------------


def test_history_lists_changes_newest_first(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    patch(client, admin, {"metadata": {"priority": "urgent"}}, **{"x-request-id": "req-a"})
    patch(client, admin, {"enabled": False, "description": "closed"})
    patch(client, admin, {"enabled": False})  # no-op: no entry
    history = client.get(f"{URL}/history", headers=admin).json()
    entries = history["history"]
    assert [e["version"] for e in entries] == [3, 2, 1] and history["metadata"]["total_count"] == 3
    assert entries[0]["changes"] == {
        "enabled": {"old": True, "new": False},
        "description": {"old": seeded["description"], "new": "closed"},
    }
    assert entries[1]["changes"] == {"metadata": {"old": seeded["metadata"], "new": {"priority": "urgent"}}}
    assert entries[1]["request_id"] == "req-a" and entries[1]["actor"].startswith("kid_")
    assert entries[1]["at"].endswith("Z")
    assert entries[2]["changes"]["description"] == {"old": None, "new": seeded["description"]}


def test_history_pages(client: TestClient, admin: dict[str, str], seeded: Any) -> None:
    for n in range(6):
        patch(client, admin, {"description": f"d{n}"})
    versions, page_key = [], None
    while True:
        params: dict[str, Any] = {"limit": 3} | ({"page_key": page_key} if page_key else {})
        page = client.get(f"{URL}/history", params=params, headers=admin).json()
        versions += [e["version"] for e in page["history"]]
        page_key = page["metadata"]["page_key"]
        if not page_key:
            break
    assert versions == [7, 6, 5, 4, 3, 2, 1]
    error(client.get(f"{URL}/history", params={"page_key": "bad!"}, headers=admin), 400, "invalid_request")


def test_history_is_capped_and_deleted_with_the_session(
    redis_url: str, make_key: MakeKey, sync_redis: redis.Redis
) -> None:
    key = {"x-api-key": make_key("admin")}
    with TestClient(create_app(Settings(redis_url=redis_url, history_max=3))) as client:
        client.post("/v2/agents", json={"key": SEED_AGENT, "name": "a"}, headers=key)
        client.post(f"/v2/agents/{SEED_AGENT}/sessions", json={"key": SEED_SESSION}, headers=key)
        for n in range(5):
            client.patch(URL, json={"description": f"d{n}"}, headers=key)
        history = client.get(f"{URL}/history", headers=key).json()
        assert [e["version"] for e in history["history"]] == [6, 5, 4]
        client.delete(URL, headers=key)
        assert not sync_redis.exists(KEYS.history(SEED_AGENT, SEED_SESSION))
        error(client.get(f"{URL}/history", headers=key), 404, "session_not_found")
