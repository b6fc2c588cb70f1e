"""Webhook endpoints as resources: CRUD, destinations, filters, signatures and rotation (verified with
the ``standardwebhooks`` package, a receiver's own verifier), the delivery log, redelivery and
recovery, a slow endpoint beside fast ones. Real Redis, real HTTP receivers, the in-process pipeline."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.testclient import TestClient

from agent_sessions.config import Settings
from agent_sessions.redis.client import sync_client
from agent_sessions.sessions.expiry import Expirer
from agent_sessions.web.app import create_app
from agent_sessions.webhooks import services as webhook_services
from tests.support import stream
from tests.support.api import MakeKey, caller
from tests.support.inprocess import InProcess
from tests.support.keys import KEYS
from tests.support.receiver import Delivery, Receiver
from tests.support.wait import eventually

pytestmark = pytest.mark.both_topologies  # one Redis, and a three-primary cluster

A, B = "agt_a", "agt_b"
HOOKS = "/v2/webhook_endpoints"


@pytest.fixture
def settings(redis_url: str) -> Settings:
    return Settings(
        redis_url=redis_url,
        webhook_allow_private_networks=True,  # receivers listen on 127.0.0.1
        webhook_max_retries=1,
        webhook_min_backoff_ms=10,
        webhook_max_backoff_ms=20,
    )


@pytest.fixture
def api(client: TestClient, admin: dict[str, str]) -> Any:
    return caller(client, admin, (A, B))


def hook(api: Any, url: str, event_types: list[str], **more: Any) -> dict[str, Any]:
    created: dict[str, Any] = api("POST", HOOKS, 201, json={"url": url, "event_types": event_types, **more})
    return created


def verified(secret: str, deliveries: list[Delivery]) -> list[dict[str, Any]]:
    return [Webhook(secret).verify(d.body, d.headers) for d in deliveries]


def test_endpoints_are_created_read_changed_and_deleted_and_the_secret_is_shown_once(
    api: Any, receiver: Receiver
) -> None:
    made = hook(api, receiver.url, ["session.updated"], description="analytics", metadata={"team": "bi"})
    assert made["id"].startswith("whe_") and made["secret"].startswith("whsec_")
    assert made["agent_keys"] is None and made["enabled"] is True and made["managed_by"] == "api"
    got = api("GET", f"{HOOKS}/{made['id']}")
    assert "secret" not in got and got == {k: v for k, v in made.items() if k != "secret"}
    assert [e["id"] for e in api("GET", HOOKS)["webhook_endpoints"]] == [made["id"]]
    changed = api("PATCH", f"{HOOKS}/{made['id']}", json={"agent_keys": [B, A, A], "enabled": False})
    assert changed["agent_keys"] == [A, B] and changed["enabled"] is False and changed["description"] == "analytics"
    api("DELETE", f"{HOOKS}/{made['id']}", 204)
    assert api("GET", f"{HOOKS}/{made['id']}", 404)["code"] == "webhook_endpoint_not_found"
    assert api("DELETE", f"{HOOKS}/{made['id']}", 404)["code"] == "webhook_endpoint_not_found"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"event_types": ["session.updated"]}, "url"),
        ({"url": "http://x.test", "event_types": ["session.opened"]}, "event_types.0"),
        ({"url": "http://x.test", "event_types": []}, "event_types"),
        ({"url": "http://x.test", "event_types": ["session.updated"], "agent_keys": ["nope"]}, "agent_keys.0"),
        ({"url": "http://x.test", "event_types": ["session.updated"], "secret": "whsec_x"}, "secret"),
        ({"url": "ftp://x.test/", "event_types": ["session.updated"]}, "url"),
        ({"url": "http://user:pw@x.test/", "event_types": ["session.updated"]}, "url"),
        ({"url": "http://", "event_types": ["session.updated"]}, "url"),
        ({"url": "http://x.test/a\r\nX-Injected: 1", "event_types": ["session.updated"]}, "url"),
        ({"url": "http://x.test/\ta", "event_types": ["session.updated"]}, "url"),
        ({"url": "http://x.te\u0000st/", "event_types": ["session.updated"]}, "url"),
    ],
)
def test_a_bad_endpoint_is_400_naming_the_field_and_nothing_is_made(
    api: Any, sync_redis: redis.Redis, body: dict[str, Any], field: str
) -> None:
    error = api("POST", HOOKS, 400, json=body)
    assert error["code"] == "invalid_request" and field in error["field_errors"], error
    assert not [key for key in sync_redis.scan_iter("as:whe*")]


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.0.10/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
        "http://no-such-host.invalid/hook",
        "http://100.100.100.200/latest/meta-data",  # a cloud's metadata service, in shared address space
        "http://100.64.0.1/hook",
        "http://[::ffff:100.100.100.200]/hook",
        "http://192.0.0.8/hook",
        "http://192.88.99.1/hook",
        "http://[2002:7f00:1::]/hook",  # 6to4 of 127.0.0.1
        "http://[2002:a9fe:a9fe::]/hook",  # 6to4 of 169.254.169.254
        "http://[64:ff9b::7f00:1]/hook",  # NAT64 of 127.0.0.1
        "http://224.0.0.1/hook",
    ],
)
def test_private_destinations_are_refused_unless_allowed(redis_url: str, admin: dict[str, str], url: str) -> None:
    with TestClient(create_app(Settings(redis_url=redis_url))) as strict:
        answer = strict.post(HOOKS, json={"url": url, "event_types": ["session.updated"]}, headers=admin)
        assert answer.status_code == 400 and "url" in answer.json()["field_errors"], answer.text
        made = strict.post(
            HOOKS, json={"url": "http://93.184.215.14/", "event_types": ["session.updated"]}, headers=admin
        )
        assert made.status_code == 201  # a public address is fine (nothing is sent to it here)
        patched = strict.patch(f"{HOOKS}/{made.json()['id']}", json={"url": url}, headers=admin)
        assert patched.status_code == 400 and "url" in patched.json()["field_errors"]


def test_delivery_checks_the_destination_again_and_follows_no_redirect(
    api: Any, receiver: Receiver, settings: Settings, sync_redis: redis.Redis
) -> None:
    refused = hook(api, receiver.url, ["session.created"], agent_keys=[A])  # allowed when made...
    redirected = Receiver()
    redirected.status = 302
    moved = hook(api, redirected.url, ["session.created"], agent_keys=[B])
    strict = settings.model_copy(update={"webhook_allow_private_networks": False})
    with InProcess(strict) as pipeline:  # ...but the workers refuse private networks
        api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": "ase_1"})
        pipeline.drain()
        eventually(lambda: api("GET", f"{HOOKS}/{refused['id']}/deliveries?status=dead")["deliveries"], "not dead")
        (row,) = api("GET", f"{HOOKS}/{refused['id']}/deliveries")["deliveries"]
        assert "refused" in row["last_error"] and "loopback" in row["last_error"] and row["last_status_code"] is None
    assert receiver.deliveries == []
    with InProcess(settings) as pipeline:
        api("POST", f"/v2/agents/{B}/sessions", 201, json={"key": "ase_1"})
        pipeline.drain()
        eventually(lambda: api("GET", f"{HOOKS}/{moved['id']}/deliveries?status=dead")["deliveries"])
    (row,) = api("GET", f"{HOOKS}/{moved['id']}/deliveries")["deliveries"]
    assert row["last_status_code"] == 302 and row["attempts"] == 2
    assert len(redirected.deliveries) == 2  # the redirect's target (port 1) was never called
    redirected.close()


def test_each_endpoint_receives_exactly_the_events_it_subscribes_to(
    api: Any, pipeline: InProcess, client: TestClient, admin: dict[str, str]
) -> None:
    with Receiver() as updates_of_a, Receiver() as lifecycle, Receiver() as disabled:
        first = hook(api, updates_of_a.url, ["session.updated"], agent_keys=[A])
        second = hook(api, lifecycle.url, ["session.created", "session.deleted"])
        hook(api, disabled.url, ["session.created"], enabled=False)
        for agent in (A, B):
            api("POST", f"/v2/agents/{agent}/sessions", 201, json={"key": "ase_1"})
            api("PATCH", f"/v2/agents/{agent}/sessions/ase_1", json={"description": "changed"})
            api("DELETE", f"/v2/agents/{agent}/sessions/ase_1", 204)
        pipeline.drain()
        got_first = verified(first["secret"], updates_of_a.wait_for(1))
        got_second = verified(second["secret"], lifecycle.wait_for(4))
        pipeline.drain()
        eventually(lambda: all(r["status"] == "delivered" for r in rows(api, second["id"])))
        assert [(m["type"], m["data"]["agent_key"]) for m in got_first] == [("session.updated", A)]
        assert sorted((m["type"], m["data"]["agent_key"]) for m in got_second) == [
            ("session.created", A),
            ("session.created", B),
            ("session.deleted", A),
            ("session.deleted", B),
        ]
        assert all(
            d.headers["webhook-id"] == m["data"]["event_id"]
            for d, m in zip(lifecycle.deliveries, got_second, strict=True)
        )
        assert disabled.deliveries == []
        with pytest.raises(WebhookVerificationError):  # one endpoint's secret does not sign another's
            Webhook(first["secret"]).verify(lifecycle.deliveries[0].body, lifecycle.deliveries[0].headers)


def rows(api: Any, endpoint: str, status: str = "") -> list[dict[str, Any]]:
    query = f"?status={status}" if status else ""
    found: list[dict[str, Any]] = api("GET", f"{HOOKS}/{endpoint}/deliveries{query}")["deliveries"]
    return found


def test_a_rotation_signs_with_both_secrets_during_its_grace_period_then_only_the_new(
    api: Any, pipeline: InProcess, receiver: Receiver
) -> None:
    made = hook(api, receiver.url, ["session.created"])
    old = made["secret"]
    rotated = api("POST", f"{HOOKS}/{made['id']}/rotate_secret", json={"grace_seconds": 3600})
    new = rotated["secret"]
    assert new != old and new.startswith("whsec_") and "secret" not in api("GET", f"{HOOKS}/{made['id']}")
    api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": "ase_1"})
    pipeline.drain()
    (during,) = receiver.wait_for(1)
    assert len(during.headers["webhook-signature"].split(" ")) == 2
    assert Webhook(new).verify(during.body, during.headers) == Webhook(old).verify(during.body, during.headers)

    newest = api("POST", f"{HOOKS}/{made['id']}/rotate_secret", json={"grace_seconds": 0})["secret"]
    api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": "ase_2"})
    pipeline.drain()

    def after_rotation() -> list[Delivery]:
        return [d for d in receiver.wait_for(2) if d is not during]

    eventually(lambda: [d for d in after_rotation() if len(d.headers["webhook-signature"].split(" ")) == 1], "", 10)
    last = after_rotation()[-1]
    Webhook(newest).verify(last.body, last.headers)
    for stale in (old, new):
        with pytest.raises(WebhookVerificationError):
            Webhook(stale).verify(last.body, last.headers)
    assert api("POST", f"{HOOKS}/whe_missing/rotate_secret", 404, json={})["code"] == "webhook_endpoint_not_found"
    error = api("POST", f"{HOOKS}/{made['id']}/rotate_secret", 400, json={"grace_seconds": -1})
    assert "grace_seconds" in error["field_errors"]


def test_the_delivery_log_pages_filters_by_status_and_redelivers(
    api: Any, pipeline: InProcess, receiver: Receiver
) -> None:
    made = hook(api, receiver.url, ["session.created"], agent_keys=[A])
    for i in range(5):
        api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": f"ase_{i}"})
    pipeline.drain()
    receiver.wait_for(5)
    eventually(lambda: len(rows(api, made["id"], "delivered")) == 5)
    first = api("GET", f"{HOOKS}/{made['id']}/deliveries?limit=2")
    second = api("GET", f"{HOOKS}/{made['id']}/deliveries?limit=2&page_key={first['metadata']['page_key']}")
    third = api("GET", f"{HOOKS}/{made['id']}/deliveries?limit=2&page_key={second['metadata']['page_key']}")
    paged = [d["event_id"] for page in (first, second, third) for d in page["deliveries"]]
    assert third["metadata"]["page_key"] is None and len(set(paged)) == 5
    received = [d.headers["webhook-id"] for d in receiver.deliveries]
    assert paged == sorted(received, reverse=True)  # newest first (ids from one process count up)
    row = first["deliveries"][0]
    assert row["status"] == "delivered" and row["attempts"] == 1 and row["last_status_code"] == 204
    assert row["delivered_at"] and row["next_attempt_at"] is None and row["type"] == "session.created"
    assert rows(api, made["id"], "dead") == [] and rows(api, made["id"], "pending") == []

    # A delivered message's body was dropped: a redelivery rebuilds it from the event log.
    again = api("POST", f"{HOOKS}/{made['id']}/deliveries/{row['event_id']}/redeliver", 202)
    assert again["status"] == "pending" and again["attempts"] == 1  # a redelivery adds attempts, never resets
    redelivered = receiver.wait_for(6)[-1]
    assert redelivered.headers["webhook-id"] == row["event_id"]
    attempts = f"{HOOKS}/{made['id']}/deliveries/{row['event_id']}/attempts"
    eventually(lambda: len(api("GET", attempts)["attempts"]) == 2, "the redelivery's attempt not recorded")
    tried = api("GET", attempts)["attempts"]
    assert [(a["status_code"], a["error"]) for a in tried] == [(204, None), (204, None)]
    assert tried[0]["at"] <= tried[1]["at"] and all(a["duration_ms"] >= 0 for a in tried)
    assert api("GET", f"{HOOKS}/{made['id']}/deliveries/evt_nope/attempts", 404)["code"] == "delivery_not_found"
    assert Webhook(made["secret"]).verify(redelivered.body, redelivered.headers)["data"]["event_id"] == row["event_id"]
    missing = f"{HOOKS}/{made['id']}/deliveries/evt_nope/redeliver"
    assert api("POST", missing, 404)["code"] == "delivery_not_found"
    assert api("GET", f"{HOOKS}/{made['id']}/deliveries?status=lost", 400)["field_errors"] == {
        "status": "one of pending, delivered, failed, dead"
    }


def test_recover_resends_every_matching_event_since_a_time_in_parts(
    api: Any, pipeline: InProcess, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    for i in range(4):
        api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": f"ase_{i}"})
        api("POST", f"/v2/agents/{B}/sessions", 201, json={"key": f"ase_{i}"})
    api("PATCH", f"/v2/agents/{A}/sessions/ase_0", json={"metadata": {"priority": "urgent"}})
    pipeline.drain()  # before the endpoint exists: it receives nothing of these
    made = hook(api, receiver.url, ["session.created", "session.escalated"], agent_keys=[A])
    monkeypatch.setattr(webhook_services, "RECOVER_MAX", 2)
    monkeypatch.setattr(webhook_services, "RECOVER_PAGE", 2)
    monkeypatch.setattr(webhook_services, "RECOVER_STEPS", 1)  # one page of the log per call
    body: dict[str, Any] = {"since": "2000-01-01T00:00:00Z"}
    queued = 0
    for _ in range(10):
        answer = api("POST", f"{HOOKS}/{made['id']}/recover", 202, json=body)
        queued += answer["queued"]
        assert answer["queued"] <= 2  # RECOVER_MAX events a call (here none has a message of two)
        assert answer["refused"] == 0 and answer["oldest_available"]
        if answer["page_key"] is None:
            break
        body["page_key"] = answer["page_key"]
    assert queued == 5 and answer["page_key"] is None
    got = verified(made["secret"], receiver.wait_for(5))
    assert sorted(m["type"] for m in got) == ["session.created"] * 4 + ["session.escalated"]
    assert {m["data"]["agent_key"] for m in got} == {A}
    assert api("POST", f"{HOOKS}/{made['id']}/recover", 400, json={"since": "yesterday"})["field_errors"]["since"]
    error = api("POST", f"{HOOKS}/{made['id']}/recover", 400, json={"since": "2000-01-01T00:00:00Z", "page_key": "x"})
    assert "page_key" in error["field_errors"]


def test_a_slow_endpoint_delays_no_other(api: Any, pipeline: InProcess, receiver: Receiver) -> None:
    with Receiver() as slow:
        slow.hold()  # answers nothing until released
        hook(api, slow.url, ["session.created"])
        fast = hook(api, receiver.url, ["session.created"])
        for i in range(40):
            api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": f"ase_{i}"})
        pipeline.drain()
        assert len(verified(fast["secret"], receiver.wait_for(40))) == 40  # all, while the slow one holds
        eventually(lambda: rows(api, fast["id"], "pending") == [], "the fast endpoint's rows stay pending")
        assert len(slow.deliveries) == 0
        slow.release()
        slow.wait_for(40)
        assert len({d.headers["webhook-id"] for d in slow.deliveries}) == 40


def test_bounds_an_endpoint_count_and_the_settings_endpoint_is_read_only(
    redis_url: str, admin: dict[str, str], receiver: Receiver
) -> None:
    configured = Settings(
        redis_url=redis_url,
        webhook_allow_private_networks=True,
        webhook_endpoints_max=2,
        escalation_webhook_url=receiver.url,
        escalation_webhook_secret="whsec_" + "MDEyMzQ1Njc4OWFiY2RlZg==",
    )
    with TestClient(create_app(configured)) as c:
        body = {"url": receiver.url, "event_types": ["session.updated"]}
        assert [c.post(HOOKS, json=body, headers=admin).status_code for _ in range(3)] == [201, 201, 409]
        listed = c.get(HOOKS, headers=admin).json()["webhook_endpoints"]
        assert [e["managed_by"] for e in listed] == ["settings", "api", "api"]
        assert listed[0]["id"] == "whe_settings" and listed[0]["event_types"] == ["session.escalated"]
        for method, path in (("PATCH", ""), ("DELETE", ""), ("POST", "/rotate_secret")):
            answer = c.request(method, f"{HOOKS}/whe_settings{path}", json={}, headers=admin)
            assert answer.status_code == 409 and answer.json()["code"] == "managed_by_settings", answer.text
        # A creation stopped between listing the id and making the record: readers skip the id.
        conn = sync_client(redis_url)
        conn.zadd(KEYS.webhook_endpoints, {"whe_halfmade": 1})
        assert [e["id"] for e in c.get(HOOKS, headers=admin).json()["webhook_endpoints"]] == [e["id"] for e in listed]
        assert c.get(f"{HOOKS}/whe_halfmade", headers=admin).status_code == 404
        conn.close()


def test_only_admins_of_every_agent_manage_endpoints(client: TestClient, make_key: MakeKey) -> None:
    for role, agents in (("editor", ()), ("viewer", ()), ("admin", (A,))):
        key = {"x-api-key": make_key(role, agents)}
        assert client.get(HOOKS, headers=key).status_code == 403
        made = client.post(HOOKS, json={"url": "http://x.test", "event_types": ["session.updated"]}, headers=key)
        assert made.status_code == 403
    assert client.get(HOOKS).status_code == 401
    assert client.get(f"{HOOKS}/not-an-id", headers={"x-api-key": make_key("admin")}).status_code == 400


def test_an_expired_session_reaches_the_endpoints_that_take_session_expired(
    api: Any, pipeline: InProcess, receiver: Receiver, settings: Settings, sync_redis: redis.Redis
) -> None:
    made = hook(api, receiver.url, ["session.expired"], agent_keys=[A])
    api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": "ase_1", "tti_minutes": 0.001})  # 60 ms
    api("POST", f"/v2/agents/{B}/sessions", 201, json={"key": "ase_1", "tti_minutes": 0.001})
    expirer = Expirer(sync_redis, KEYS, settings.expiry_batch, dimensions=settings.report_dimensions)
    eventually(
        lambda: (
            expirer.step(),
            sync_redis.zcard(KEYS.expiry(KEYS.tag(A))) + sync_redis.zcard(KEYS.expiry(KEYS.tag(B))) == 0,
        )[1],
        "not expired",
    )
    pipeline.drain()
    (delivery,) = receiver.wait_for(1)
    message = Webhook(made["secret"]).verify(delivery.body, delivery.headers)
    assert message["type"] == "session.expired" and message["data"]["agent_key"] == A
    assert message["data"]["actor"] == "system"


def test_each_endpoint_has_its_own_retry_schedule(api: Any, pipeline: InProcess, receiver: Receiver) -> None:
    receiver.status = 500  # every attempt fails
    once = hook(api, receiver.url, ["session.created"], agent_keys=[A], max_retries=0)
    default = hook(api, receiver.url, ["session.created"], agent_keys=[B])
    assert once["max_retries"] == 0 and default["max_retries"] is None
    api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": "ase_1"})
    api("POST", f"/v2/agents/{B}/sessions", 201, json={"key": "ase_1"})
    pipeline.drain()
    for endpoint in (once, default):
        eventually(lambda e=endpoint: rows(api, e["id"], "dead"), "not dead")  # type: ignore[misc]
    assert rows(api, once["id"])[0]["attempts"] == 1  # no retry
    assert rows(api, default["id"])[0]["attempts"] == 2  # the settings' WEBHOOK_MAX_RETRIES=1
    changed = api("PATCH", f"{HOOKS}/{once['id']}", json={"max_retries": 2, "min_backoff_ms": 5, "max_backoff_ms": 5})
    assert (changed["max_retries"], changed["min_backoff_ms"]) == (2, 5)
    message = rows(api, once["id"])[0]["event_id"]
    api("POST", f"{HOOKS}/{once['id']}/deliveries/{message}/redeliver", 202)
    eventually(lambda: rows(api, once["id"], "dead"), "not dead again")
    # The attempt made before, then the new schedule from the redelivery on (a try and two retries).
    assert rows(api, once["id"])[0]["attempts"] == 1 + 3
    reset = api("PATCH", f"{HOOKS}/{once['id']}", json={"max_retries": None})
    assert reset["max_retries"] is None
    assert "max_retries" in api("PATCH", f"{HOOKS}/{once['id']}", 400, json={"max_retries": 101})["field_errors"]


def test_an_endpoint_gets_every_event_from_its_answer_on_and_none_after_its_removal(
    api: Any, pipeline: InProcess, sync_redis: redis.Redis
) -> None:
    """No settling time after a create or a change: the relay runs all along (as in a worker), and each
    write is made right after the answer before it. (Before a removal the test lets the deliveries
    arrive: a disabled endpoint's queue waits until it is enabled again, a deleted one's is gone.)"""
    pipeline.start_relay()
    with Receiver() as first, Receiver() as second:
        api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": "ase_1"})
        api("POST", f"/v2/agents/{B}/sessions", 201, json={"key": "ase_1"})

        def change(agent: str, n: int) -> None:
            api("PATCH", f"/v2/agents/{agent}/sessions/ase_1", json={"description": f"v{n}"})

        one = hook(api, first.url, ["session.updated"], agent_keys=[A])
        change(A, 1)  # committed right after the 201: delivered
        change(B, 1)  # another agent: not
        api("PATCH", f"{HOOKS}/{one['id']}", json={"agent_keys": [B]})
        change(A, 2)  # right after the filter's change: not
        change(B, 2)  # delivered
        first.wait_for(2)
        api("PATCH", f"{HOOKS}/{one['id']}", json={"enabled": False})
        change(B, 3)  # right after the disable: not (not even queued for later)
        two = hook(api, second.url, ["session.updated"])
        change(A, 3)  # delivered to the second
        second.wait_for(1)
        api("DELETE", f"{HOOKS}/{two['id']}", 204)
        change(A, 4)  # right after the delete: not
        eventually(lambda: stream.outbox_length(sync_redis) == 0, "the relay did not catch up")
        sent = verified(one["secret"], first.deliveries)
        # (in any order: deliveries are concurrent)
        assert sorted((m["data"]["agent_key"], m["data"]["session"]["description"]) for m in sent) == [
            (A, "v1"),
            (B, "v2"),
        ]
        assert len(rows(api, one["id"])) == 2
        (message,) = verified(two["secret"], second.deliveries)
        assert message["data"]["session"]["description"] == "v3"


def test_every_attempt_is_recorded_and_a_redelivery_adds_to_them(
    api: Any, pipeline: InProcess, settings: Settings, receiver: Receiver
) -> None:
    """The endpoint's retries (WEBHOOK_MAX_RETRIES 1 here: two tries) fail, the message is dead; a
    redelivery tries again on a fresh schedule and succeeds: three attempts, each with its outcome."""
    receiver.fail_next(2)
    made = hook(api, receiver.url, ["session.created"], agent_keys=[A])
    api("POST", f"/v2/agents/{A}/sessions", 201, json={"key": "ase_1"})
    pipeline.drain()
    (dead,) = eventually(lambda: rows(api, made["id"], "dead"), "not dead")
    assert dead["attempts"] == 2 and dead["last_status_code"] == 500
    attempts = f"{HOOKS}/{made['id']}/deliveries/{dead['event_id']}/attempts"
    assert [(a["status_code"], a["error"]) for a in api("GET", attempts)["attempts"]] == [
        (500, "HTTP 500 from receiver"),
        (500, "HTTP 500 from receiver"),
    ]
    api("POST", f"{HOOKS}/{made['id']}/deliveries/{dead['event_id']}/redeliver", 202)
    eventually(lambda: rows(api, made["id"], "delivered"), "not redelivered")
    tried = api("GET", attempts)["attempts"]
    assert [a["status_code"] for a in tried] == [500, 500, 204] and tried[-1]["error"] is None
    (row,) = rows(api, made["id"])
    assert row["attempts"] == 3 and row["status"] == "delivered"


def test_a_test_event_is_sent_signed_now_and_its_outcome_answered(api: Any, receiver: Receiver) -> None:
    made = hook(api, receiver.url, ["session.updated"])
    went = api("POST", f"{HOOKS}/{made['id']}/test", 200)
    assert went["status_code"] == 204 and went["error"] is None and went["duration_ms"] >= 0
    (delivery,) = receiver.deliveries
    sent = Webhook(made["secret"]).verify(delivery.body, delivery.headers)  # signed with the endpoint's secret
    assert sent["type"] == "webhook.test" and sent["data"]["endpoint_id"] == made["id"]
    assert delivery.headers["webhook-id"] == went["id"]
    receiver.fail_next(1)
    failed = api("POST", f"{HOOKS}/{made['id']}/test", 200)
    assert failed["status_code"] == 500 and failed["error"] == "HTTP 500 from receiver"
    assert rows(api, made["id"]) == []  # a test is not a delivery: nothing queued or recorded
    unreachable = hook(api, "http://127.0.0.1:9/hook", ["session.updated"])
    gone = api("POST", f"{HOOKS}/{unreachable['id']}/test", 200)
    assert gone["status_code"] is None and "no answer" in gone["error"]
    assert api("POST", f"{HOOKS}/whe_nope/test", 404)["code"] == "webhook_endpoint_not_found"
