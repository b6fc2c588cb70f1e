"""Dramatiq messages are encoded by orjson (``broker.OrjsonEncoder``): every event comes back exactly,
and messages written by Dramatiq's own JSON encoder (already queued before an upgrade) read alike."""

from __future__ import annotations

from typing import Any

import dramatiq
import pytest
from dramatiq.encoder import JSONEncoder
from dramatiq.errors import DecodeError

from agent_sessions.worker.broker import OrjsonEncoder

EVENT: dict[str, Any] = {
    "event_id": "evt_1",
    "type": "session.updated",
    "version": 7,
    "changes": {"metadata": {"old": {"priority": "low"}, "new": {"priority": "urgent", "seq": 2**63 - 1}}},
    "session": {"description": 'Ünïcode ✓ "quoted" \n', "metadata": {"score": 0.1, "tags": [], "x": None}},
}


DATA = dramatiq.Message(queue_name="q", actor_name="a", args=([EVENT],), kwargs={}, options={"retries": 2}).asdict()
AS_JSON = JSONEncoder().decode(JSONEncoder().encode(DATA))  # what Dramatiq's own encoder gives back (lists)


def test_round_trip_is_what_dramatiqs_encoder_gives_back() -> None:
    encoder = OrjsonEncoder()
    assert encoder.decode(encoder.encode(DATA)) == AS_JSON
    assert AS_JSON["args"] == [[EVENT]]


def test_reads_and_is_read_by_dramatiqs_json_encoder() -> None:
    ours, theirs = OrjsonEncoder(), JSONEncoder()
    assert ours.decode(theirs.encode(DATA)) == AS_JSON
    assert theirs.decode(ours.encode(DATA)) == AS_JSON


def test_garbage_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        OrjsonEncoder().decode(b"\xff not json")
