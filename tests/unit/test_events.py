"""The queue message contract: version 1 round-trips, anything else is named as poison."""

from __future__ import annotations

import json

import pytest

from chalicelib.events import Event, MessageError, ProfileUpdate, Session


def full_event() -> Event:
    return Event(
        event_id="e-1",
        event_type="purchase",
        endpoint_id="ep-1",
        timestamp="2026-11-28T11:00:00.000Z",
        received_at="2026-11-28T11:00:01.000Z",
        session=Session(id="s-1", start="2026-11-28T10:00:00.000Z"),
        attributes={"product": "shoes", "note": "ünïcode"},
        metrics={"price": 49.9},
        profile=ProfileUpdate(
            user_id="u-1",
            user_attributes={"interests": ("music", "travel")},
            endpoint_attributes={"plan": ("gold",)},
            endpoint_metrics={"visits": 3.0},
        ),
    )


def test_round_trip_keeps_every_field() -> None:
    event = full_event()
    assert Event.from_message(event.to_message()) == event


def test_message_is_documented_version_1_json_without_request_details() -> None:
    document = json.loads(full_event().to_message())
    assert document["version"] == 1
    assert set(document) == {
        "version",
        "event_id",
        "event_type",
        "endpoint_id",
        "timestamp",
        "received_at",
        "session",
        "attributes",
        "metrics",
        "user_id",
        "user_attributes",
        "endpoint_attributes",
        "endpoint_metrics",
    }


def mutate(**changes: object) -> str:
    document = json.loads(full_event().to_message())
    document.update(changes)
    return json.dumps(document)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json", "body is not JSON"),
        ("[1, 2]", "body is not a JSON object"),
        (mutate(version=2), "unsupported message version 2"),
        (mutate(version=None), "unsupported message version None"),
        (mutate(event_type=""), "event_type must be a non-empty string"),
        (mutate(endpoint_id=7), "endpoint_id must be a non-empty string"),
        (mutate(session={"id": "s"}), "session.start must be a non-empty string"),
        (mutate(session="s"), "session must be an object or null"),
        (mutate(attributes={"a": 1}), "attributes values must be strings"),
        (mutate(metrics={"m": "1"}), "metrics values must be numbers"),
        (mutate(metrics={"m": True}), "metrics values must be numbers"),
        (mutate(user_attributes={"a": "x"}), "user_attributes values must be lists of strings"),
        (mutate(endpoint_metrics=[]), "endpoint_metrics must be an object"),
    ],
)
def test_malformed_messages_are_named(body: str, reason: str) -> None:
    with pytest.raises(MessageError) as caught:
        Event.from_message(body)
    assert str(caught.value) == reason


def test_non_finite_metric_is_poison() -> None:
    body = full_event().to_message().replace('"price":49.9', '"price":NaN')
    with pytest.raises(MessageError, match="metrics values must be finite"):
        Event.from_message(body)
