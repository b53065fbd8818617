"""The queue message contract: version 1 round-trips, anything else is named as poison."""

from __future__ import annotations

import json

import pytest

from chalicelib.events import Event, EventRecord, MessageError, ProfileUpdate, Session


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
        client_timestamp="2026-11-28T10:00:00.000Z",  # a client clock an hour behind
        consent={"analytics_storage": "granted", "ad_user_data": "denied"},
    )


def test_round_trip_keeps_every_field() -> None:
    event = full_event()
    assert Event.from_message(event.to_message()) == event


def test_message_is_documented_version_1_json_without_request_details() -> None:
    document = json.loads(full_event().to_message())
    assert document["version"] == 1
    assert set(document) == {
        "version",
        *EventRecord.__required_keys__,
        *EventRecord.__optional_keys__,  # full_event() carries them all
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
        (mutate(version=None), "unsupported message version (null; this consumer reads 1)"),
        (mutate(version="1"), "unsupported message version (a string; this consumer reads 1)"),
        (mutate(version=1.0), "unsupported message version (a number; this consumer reads 1)"),
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


@pytest.mark.parametrize(
    "version", ["alice@example.com", 4_915_550_123_456, {"user": "u-victim"}, ["ep-victim"]]
)
def test_a_decode_reason_never_echoes_the_version_it_refused(version: object) -> None:
    """The reason reaches logs and the dead letter's attributes, where docs/operations.md
    says no identifier is: a `version` that is not a small number is named by its type."""
    with pytest.raises(MessageError) as caught:
        Event.from_message(mutate(version=version))
    reason = str(caught.value)
    assert reason.startswith("unsupported message version (")
    for secret in ("alice", "4915550123456", "u-victim", "ep-victim"):
        assert secret not in reason


def test_non_finite_metric_is_poison() -> None:
    body = full_event().to_message().replace('"price":49.9', '"price":NaN')
    with pytest.raises(MessageError, match="metrics values must be finite"):
        Event.from_message(body)


# Fields the pixel would never write (issue 10): each is parked at decode, naming the field,
# instead of reaching a destination's request builder and failing the whole batch.

EMOJI = "\U0001f600"
TIME_RULE = "must be ISO 8601 UTC like 2026-11-28T10:00:00.000Z (or with an offset)"
PRINTABLE = "must be printable, without leading or trailing spaces"
ASCII = "must be printable ASCII without spaces"
GTM = "what GTM writes for an unset variable; leave the parameter out instead"
ALL_PROFILE = "user_attributes/endpoint_attributes/endpoint_metrics"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"timestamp": "2026-11-30 10:00:00 UTC"}, f"timestamp {TIME_RULE}"),
        ({"timestamp": "yesterday"}, f"timestamp {TIME_RULE}"),
        ({"timestamp": 1764331200000}, "timestamp must be a non-empty string"),
        ({"timestamp": "2026-11-28T11:00:00"}, f"timestamp {TIME_RULE}"),  # naive
        ({"timestamp": "2026-11-28"}, f"timestamp {TIME_RULE}"),
        ({"timestamp": "2026-02-30T10:00:00Z"}, f"timestamp {TIME_RULE}"),
        (
            {"timestamp": "0001-01-01T00:00:00+01:00"},
            "timestamp is outside the years 1-9999 in UTC",
        ),
        ({"received_at": "now"}, f"received_at {TIME_RULE}"),
        ({"event_type": "e" * 120}, "event_type is 120 characters; the limit is 50"),
        ({"event_type": ""}, "event_type must be a non-empty string"),
        (
            {"event_type": "_session.start"},
            "event_type names starting with _ are Pinpoint's built-in events",
        ),
        ({"event_type": "a\nb"}, f"event_type {PRINTABLE}"),
        (
            {"event_type": EMOJI * 26},
            "event_type is 52 UTF-16 units (26 characters); the limit is 50",
        ),
        ({"endpoint_id": ""}, "endpoint_id must be a non-empty string"),
        ({"endpoint_id": "a b"}, f"endpoint_id {ASCII}"),
        ({"endpoint_id": "x" * 129}, "endpoint_id is 129 characters; the limit is 128"),
        ({"event_id": "é"}, f"event_id {ASCII}"),
        ({"user_id": "u\t1"}, f"user_id {ASCII}"),
        ({"attributes": {"a": 1}}, "attributes values must be strings"),
        ({"attributes": {"a": None}}, "attributes values must be strings"),
        (
            {"attributes": {"a": "v" * 201}},
            "attributes value is 201 characters; Pinpoint allows 200",
        ),
        (
            {"attributes": {"a": EMOJI * 101}},
            "attributes value is 202 UTF-16 units (101 characters); Pinpoint allows 200",
        ),
        (
            {"attributes": {"a": "x\x00y"}},
            "attributes value contains a control or non-character code point",
        ),
        ({"attributes": {"": "x"}}, "attributes name is empty"),
        ({"attributes": {"k" * 51: "x"}}, "attributes name is 51 characters; Pinpoint allows 50"),
        ({"attributes": {" k": "x"}}, f"attributes name {PRINTABLE}"),
        ({"metrics": {"m": "1"}}, "metrics values must be numbers"),
        ({"metrics": {"m": None}}, "metrics values must be numbers"),
        ({"metrics": {"m": 10**400}}, "metrics values must be finite"),
        ({"metrics": {"\n": 1}}, f"metrics name {PRINTABLE}"),
        (
            {
                "attributes": {f"a{i}": "v" for i in range(21)},
                "metrics": {f"m{i}": 1 for i in range(20)},
            },
            "attributes/metrics 41 attributes and metrics; Pinpoint allows 40 per event",
        ),
        ({"user_attributes": {"a": "x"}}, "user_attributes values must be lists of strings"),
        ({"user_attributes": {"a": [1]}}, "user_attributes values must be lists of strings"),
        ({"user_attributes": {"a": []}}, "user_attributes list of values is empty"),
        ({"user_attributes": {"a": [""]}}, "user_attributes value is empty"),
        (
            {"user_attributes": {"a": ["v" * 101]}},
            "user_attributes value is 101 characters; Pinpoint allows 100",
        ),
        (
            {"user_attributes": {"a": [str(i) for i in range(51)]}},
            "user_attributes 51 values; Pinpoint allows 50",
        ),
        (
            {"endpoint_attributes": {"plan": ["undefined"]}},
            f'endpoint_attributes value is "undefined", {GTM}',
        ),
        (
            {"endpoint_attributes": {"plan": ["null"]}},
            f'endpoint_attributes value is "null", {GTM}',
        ),
        ({"endpoint_metrics": {"v": "3"}}, "endpoint_metrics values must be numbers"),
        (
            {"endpoint_attributes": {f"a{i}": ["v"] for i in range(251)}},
            f"{ALL_PROFILE} 253 profile attributes; Pinpoint allows 250",
        ),
        ({"session": "s-1"}, "session must be an object or null"),
        ({"session": []}, "session must be an object or null"),
        ({"session": {"id": "s-1"}}, "session.start must be a non-empty string"),
        ({"session": {"id": "s 1", "start": "2026-11-28T10:00:00.000Z"}}, f"session.id {ASCII}"),
        ({"session": {"id": "s-1", "start": "10:00"}}, f"session.start {TIME_RULE}"),
        (
            {"session": {"id": "s-1", "start": "2026-11-28T11:00:00.001Z"}},
            "session.start is after the event's timestamp",
        ),
    ],
)
def test_fields_the_pixel_never_writes_are_poison_named_by_field(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(MessageError) as caught:
        Event.from_message(mutate(**changes))
    assert str(caught.value) == reason


def test_profile_size_is_bounded_at_decode_as_at_the_pixel() -> None:
    big = {f"a{i}": [f"{j:03d}" + "v" * 96 for j in range(50)] for i in range(4)}
    with pytest.raises(MessageError) as caught:
        Event.from_message(mutate(user_attributes=big))
    assert str(caught.value).startswith("user_id/user_attributes/endpoint_attributes profile ")


def test_poison_reasons_never_carry_a_key_or_value_of_the_message() -> None:
    body = mutate(user_attributes={"alice@example.com": ["v" * 101]})
    with pytest.raises(MessageError) as caught:
        Event.from_message(body)
    assert "alice" not in str(caught.value)


def test_an_instant_with_an_offset_is_read_and_normalised_to_the_pixels_form() -> None:
    event = Event.from_message(
        mutate(
            timestamp="2026-11-28T12:00:00+01:00",
            received_at="2026-11-28T11:00:01.5Z",
            session={"id": "s-1", "start": "2026-11-28T05:00:00.123456-05:00"},
        )
    )
    assert event.timestamp == "2026-11-28T11:00:00.000Z"
    assert event.received_at == "2026-11-28T11:00:01.500Z"
    assert event.session == Session(id="s-1", start="2026-11-28T10:00:00.123Z")


def test_time_windows_do_not_apply_at_decode_so_old_replays_still_deliver() -> None:
    old = "2019-01-01T00:00:00.000Z"
    event = Event.from_message(mutate(timestamp=old, received_at=old, session=None))
    assert event.timestamp == old


def test_profile_allowlists_do_not_apply_at_decode() -> None:
    # The pixel decided what this hit may write (a signed hit may write more): the
    # consumer has no allowlist to apply, only the structural rules.
    event = Event.from_message(mutate(user_id="u-9", user_attributes={"anything": ["x", "x", "y"]}))
    assert event.profile.user_id == "u-9"
    assert event.profile.user_attributes == {"anything": ("x", "y")}


def test_event_attributes_that_gtm_invented_are_not_poison_at_decode() -> None:
    # Harmless on an event (no profile is overwritten); the pixel drops them, but a message
    # queued before it did is still delivered.
    event = Event.from_message(mutate(attributes={"page": "undefined"}))
    assert event.attributes == {"page": "undefined"}


def test_a_body_at_every_limit_decodes() -> None:
    body = mutate(
        event_type="e" * 50,
        endpoint_id="x" * 128,
        attributes={f"{i:02d}" + "k" * 48: EMOJI * 100 for i in range(20)},
        metrics={f"m{i}": 1e308 for i in range(20)},
        user_attributes={"a": ["\u00e9" * 100] * 1},
    )
    event = Event.from_message(body)
    assert len(event.attributes) == 20
