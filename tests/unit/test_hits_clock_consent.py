"""A hit's `sent_at` (the client's clock, corrected), its `consent` state, and identifiers that
are GTM's text for an unset variable."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote

import pytest

from chalicelib import clock
from chalicelib.events import Event, MessageError
from chalicelib.rules import format_instant
from tests.unit.hit_queries import BASE, NOW, accept, event_of, refusal


def millis(instant: datetime) -> str:
    return str(int(instant.timestamp() * 1000))


def iso(instant: datetime) -> str:
    return quote(format_instant(instant))


# The client's clock ----------------------------------------------------------------------------


def test_a_clock_an_hour_behind_is_put_right_and_its_time_kept_apart() -> None:
    behind = timedelta(hours=1)
    happened = NOW - timedelta(minutes=1)  # a minute ago, on the pixel's clock
    event = event_of(f"{BASE}&timestamp={millis(happened - behind)}&sent_at={millis(NOW - behind)}")
    assert event.timestamp == format_instant(happened)
    assert event.client_timestamp == format_instant(happened - behind)
    assert event.received_at == format_instant(NOW)


def test_a_clock_a_day_behind_is_no_longer_refused_as_too_old() -> None:
    behind = timedelta(days=1, minutes=5)
    query = f"{BASE}&timestamp={millis(NOW - behind)}"
    assert refusal(query) == "timestamp: is more than 24 h old"
    event = event_of(f"{query}&sent_at={iso(NOW - behind)}")
    assert event.timestamp == format_instant(NOW)
    assert event.client_timestamp == format_instant(NOW - behind)


def test_a_clock_ahead_is_shifted_back_whatever_the_size() -> None:
    ahead = timedelta(days=400)
    event = event_of(
        f"{BASE}&timestamp={millis(NOW + ahead - timedelta(seconds=30))}"
        f"&sent_at={millis(NOW + ahead)}"
    )
    assert event.timestamp == format_instant(NOW - timedelta(seconds=30))


def test_within_a_few_seconds_the_time_is_the_clients_own() -> None:
    happened = NOW - timedelta(seconds=20)
    sent = NOW - clock.CLOCK_TOLERANCE  # flight time, not a wrong clock
    event = event_of(f"{BASE}&timestamp={millis(happened)}&sent_at={millis(sent)}")
    assert event.timestamp == format_instant(happened)
    assert event.client_timestamp is None


def test_only_the_corrected_time_meets_the_window() -> None:
    # The client's clock is right: an event 25 h old stays refused.
    old = NOW - timedelta(hours=25)
    assert refusal(f"{BASE}&timestamp={millis(old)}&sent_at={millis(NOW)}") == (
        "timestamp: is more than 24 h old"
    )
    # Dated 11 min ahead by a clock that is 11 min ahead: corrected to now, accepted.
    ahead = NOW + timedelta(minutes=11)
    assert event_of(f"{BASE}&timestamp={millis(ahead)}&sent_at={millis(ahead)}").timestamp == (
        format_instant(NOW)
    )


def test_sent_at_itself_has_no_window_but_must_be_an_instant() -> None:
    far = datetime(2001, 1, 1, tzinfo=UTC)
    assert event_of(f"{BASE}&sent_at={iso(far)}").timestamp == format_instant(NOW)
    assert refusal(f"{BASE}&sent_at=yesterday") == (
        "sent_at: must be ISO 8601 with an offset or Z, or epoch milliseconds"
    )
    assert refusal(f"{BASE}&sent_at=1&sent_at=2") == "sent_at: given 2 times; send it once"


def test_without_a_timestamp_the_receive_time_needs_no_correction() -> None:
    event = event_of(f"{BASE}&sent_at={millis(NOW - timedelta(hours=3))}")
    assert event.timestamp == format_instant(NOW)
    assert event.client_timestamp is None


def test_the_session_start_is_corrected_with_the_timestamp() -> None:
    behind = timedelta(hours=2)
    event = event_of(
        f"{BASE}&session_id=s-1&session_start={millis(NOW - behind - timedelta(minutes=9))}"
        f"&timestamp={millis(NOW - behind)}&sent_at={millis(NOW - behind)}"
    )
    assert event.session is not None
    assert event.session.start == format_instant(NOW - timedelta(minutes=9))
    assert event.timestamp == format_instant(NOW)


def test_a_correction_beyond_the_calendar_is_refused_with_its_reason() -> None:
    query = f"{BASE}&timestamp=0001-01-01T00:00:00Z&sent_at=9999-12-31T00:00:00Z"
    assert refusal(query) == "timestamp: is outside the years 1-9999 once corrected by sent_at"


def test_sent_at_is_a_known_parameter_not_an_unknown_one() -> None:
    assert accept(f"{BASE}&sent_at={millis(NOW)}", strict_parameters=True).unknown_parameters == ()


def test_the_message_round_trip_keeps_the_clients_time() -> None:
    behind = timedelta(hours=1)
    event = event_of(f"{BASE}&timestamp={millis(NOW - behind)}&sent_at={millis(NOW - behind)}")
    decoded = Event.from_message(event.to_message())
    assert decoded == event
    assert decoded.to_record()["client_timestamp"] == format_instant(NOW - behind)
    assert "client_timestamp" not in event_of(BASE).to_record()


# Consent ----------------------------------------------------------------------------------------


def test_the_consent_state_is_read_and_carried_in_the_message() -> None:
    event = event_of(
        f"{BASE}&consent="
        + quote("ad_storage:denied,analytics_storage:granted,ad_user_data:granted")
    )
    assert event.consent == {
        "ad_storage": "denied",
        "analytics_storage": "granted",
        "ad_user_data": "granted",
    }
    assert Event.from_message(event.to_message()).consent == event.consent
    assert event_of(BASE).consent is None
    assert "consent" not in event_of(BASE).to_record()


def test_a_hit_denying_every_consent_type_is_still_accepted() -> None:
    states = ",".join(f"{kind}:denied" for kind in ("ad_storage", "analytics_storage"))
    assert event_of(f"{BASE}&consent={quote(states)}").consent == {
        "ad_storage": "denied",
        "analytics_storage": "denied",
    }


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("ad_storage", "consent: must be type:state pairs separated by commas"),
        ("ad_storage:yes", "consent: a consent state is granted or denied"),
        ("cookies:granted", "consent: unknown consent type; known: ad_storage, "),
        ("ad_storage:granted,ad_storage:denied", "consent: names a consent type twice"),
        ("ad_storage:granted,", "consent: must be type:state pairs separated by commas"),
    ],
)
def test_a_malformed_consent_parameter_is_refused_naming_it(value: str, reason: str) -> None:
    assert refusal(f"{BASE}&consent={quote(value)}").startswith(reason)


def test_a_message_with_a_malformed_consent_field_is_poison() -> None:
    document = event_of(BASE).to_record() | {"version": 1, "consent": {"ad_storage": True}}
    with pytest.raises(MessageError, match=r"^consent must be an object"):
        Event.from_message(json.dumps(document))


# GTM's text for an unset variable --------------------------------------------------------------


@pytest.mark.parametrize("name", ["endpoint_id", "event", "event_id", "session_id", "user_id"])
@pytest.mark.parametrize("invented", ["undefined", "null"])
def test_an_identifier_gtm_invented_is_refused_naming_the_parameter(
    name: str, invented: str
) -> None:
    params = {"event": "purchase", "endpoint_id": "ep-1", name: invented}
    query = "&".join(f"{key}={value}" for key, value in params.items())
    reason = refusal(query, allow_anonymous_user_id=True)
    assert reason.startswith(f'{name}: is "{invented}", what GTM writes for an unset variable')


@pytest.mark.parametrize("lookalike", ["Undefined", "undefined1", "nullable", "NULL"])
def test_only_the_exact_texts_are_refused_as_identifiers(lookalike: str) -> None:
    assert event_of(f"event=purchase&endpoint_id={lookalike}").endpoint_id == lookalike


def test_a_time_ahead_of_the_receive_time_is_clamped_after_the_correction() -> None:
    """A hit dated 9 minutes ahead (within MAX_CLOCK_AHEAD_SECONDS, no sent_at) must not
    beat genuine profile updates for 9 minutes: its time is the receive time, the client's
    own kept apart."""
    ahead = NOW + timedelta(minutes=9)
    event = event_of(f"{BASE}&timestamp={millis(ahead)}&session_id=s-1")
    assert event.timestamp == format_instant(NOW)
    assert event.client_timestamp == format_instant(ahead)
    assert event.session is not None
    assert event.session.start == format_instant(NOW)
    # Correct first, then clamp: a clock 2 h behind that dates an event 9 min "ahead" of its
    # own sent_at is corrected to 9 min ahead of now, then clamped to now.
    behind = timedelta(hours=2)
    corrected = event_of(
        f"{BASE}&timestamp={millis(ahead - behind)}&sent_at={millis(NOW - behind)}"
    )
    assert corrected.timestamp == format_instant(NOW)
    # A session started ahead is clamped too, so it still starts no later than its event.
    session = event_of(
        f"{BASE}&timestamp={millis(ahead)}&session_id=s-1&session_start={millis(ahead)}"
    )
    assert session.session is not None
    assert session.session.start == session.timestamp == format_instant(NOW)
    # Beyond MAX_CLOCK_AHEAD_SECONDS it is still refused, not clamped.
    assert refusal(f"{BASE}&timestamp={millis(NOW + timedelta(minutes=11))}") == (
        "timestamp: is more than 10 min in the future"
    )
