"""Every parameter rule of GET /events, and the reason a browser gets back when one breaks."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from urllib.parse import parse_qs

import pytest

from chalicelib.events import Event
from chalicelib.hits import HitPolicy, HitRefusedError, parse_hit
from tests.unit.hit_queries import BASE, NOW, accept, event_of, refusal

# The basics ---------------------------------------------------------------------------------


def test_minimal_hit_gets_receipt_time_and_generated_id() -> None:
    event = event_of(BASE)
    assert event.event_type == "purchase"
    assert event.endpoint_id == "ep-1"
    assert event.event_id == "generated-id"
    assert event.timestamp == "2026-11-28T12:00:00.000Z"
    assert event.received_at == "2026-11-28T12:00:00.000Z"
    assert event.session is None
    assert event.profile.is_empty()


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ("endpoint_id=ep-1", "event: is required"),
        ("event=&endpoint_id=ep-1", "event: is required"),
        ("event=purchase", "endpoint_id: is required"),
        ("", "event: is required"),
    ],
)
def test_required_parameters(query: str, reason: str) -> None:
    assert refusal(query) == reason


def test_client_event_id_is_kept_for_dedupe() -> None:
    assert event_of(BASE + "&event_id=order-42").event_id == "order-42"


# Event type ---------------------------------------------------------------------------------


def test_event_type_may_not_imitate_pinpoint_built_ins() -> None:
    assert refusal("event=_session.start&endpoint_id=ep-1") == (
        "event: names starting with _ are Pinpoint's built-in events"
    )


def test_event_type_length_is_bounded() -> None:
    assert event_of(f"event={'e' * 50}&endpoint_id=ep-1").event_type == "e" * 50
    assert refusal(f"event={'e' * 51}&endpoint_id=ep-1") == (
        "event: is 51 characters; the limit is 50"
    )


def test_event_type_must_be_printable() -> None:
    assert "must be printable" in refusal("event=a%0Ab&endpoint_id=ep-1")
    assert "must be printable" in refusal("event=%20a&endpoint_id=ep-1")


# Identifiers --------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["endpoint_id", "event_id", "session_id"])
def test_identifiers_are_printable_ascii_without_spaces(name: str) -> None:
    query = f"event=view&endpoint_id=ep-1&{name}=a%20b".replace(
        "endpoint_id=ep-1&endpoint_id", "endpoint_id"
    )
    assert refusal(query) == f"{name}: must be printable ASCII without spaces"


def test_identifier_length_is_bounded() -> None:
    assert event_of(f"event=view&endpoint_id={'x' * 128}").endpoint_id == "x" * 128
    assert refusal(f"event=view&endpoint_id={'x' * 129}") == (
        "endpoint_id: is 129 characters; the limit is 128"
    )


def test_single_valued_parameters_may_not_repeat() -> None:
    assert refusal(BASE + "&event=view") == "event: given 2 times; send it once"
    assert refusal(BASE + "&evat_a=1&evat_a=2") == "evat_a: given 2 times; send it once"


# Timestamps ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-28T11:30:00Z", "2026-11-28T11:30:00.000Z"),
        ("2026-11-28T12:30:00%2B01:00", "2026-11-28T11:30:00.000Z"),
        ("2026-11-28T12:30:00.250+01:00", "2026-11-28T11:30:00.250Z"),  # GTM's raw "+" → space
        ("2026-11-28T06:30:00-05:00", "2026-11-28T11:30:00.000Z"),
        (str(int(datetime(2026, 11, 28, 11, 30, tzinfo=UTC).timestamp() * 1000)), None),
    ],
)
def test_timestamp_formats(value: str, expected: str | None) -> None:
    event = event_of(f"{BASE}&timestamp={value}")
    assert event.timestamp == (expected or "2026-11-28T11:30:00.000Z")
    assert event.received_at == "2026-11-28T12:00:00.000Z"


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("yesterday", "timestamp: must be ISO 8601 with an offset or Z, or epoch milliseconds"),
        ("2026-11-28T11:30:00", "timestamp: needs a UTC offset or Z"),
        ("2026-11-27T11:59:59Z", "timestamp: is more than 24 h old"),
        ("2026-11-28T12:10:01Z", "timestamp: is more than 10 min in the future"),
        ("999999999999999", "timestamp: epoch milliseconds out of range"),
    ],
)
def test_timestamp_refusals(value: str, reason: str) -> None:
    assert refusal(f"{BASE}&timestamp={value}") == reason


def test_timestamp_bounds_are_configurable() -> None:
    old = "2026-11-20T12:00:00Z"
    assert refusal(f"{BASE}&timestamp={old}") == "timestamp: is more than 24 h old"
    event = event_of(f"{BASE}&timestamp={old}", max_event_age=timedelta(days=10))
    assert event.timestamp == "2026-11-20T12:00:00.000Z"


# Sessions -----------------------------------------------------------------------------------


def test_session_with_start() -> None:
    event = event_of(f"{BASE}&session_id=s-1&session_start=2026-11-28T11:00:00Z")
    assert event.session is not None
    assert (event.session.id, event.session.start) == ("s-1", "2026-11-28T11:00:00.000Z")


def test_session_start_defaults_to_the_event_time() -> None:
    event = event_of(f"{BASE}&session_id=s-1&timestamp=2026-11-28T11:59:00Z")
    assert event.session is not None
    assert event.session.start == "2026-11-28T11:59:00.000Z"


def test_session_start_rules() -> None:
    assert refusal(f"{BASE}&session_start=2026-11-28T11:00:00Z") == (
        "session_start: needs session_id"
    )
    assert refusal(
        f"{BASE}&session_id=s&session_start=2026-11-28T11:59:00Z&timestamp=2026-11-28T11:00:00Z"
    ) == ("session_start: is after the event's timestamp")


# Event attributes and metrics ---------------------------------------------------------------


def test_event_attributes_and_metrics() -> None:
    event = event_of(f"{BASE}&evat_color=red&evat_note=&evmt_price=19.90&evmt_qty=-2&evmt_e=1e3")
    assert event.attributes == {"color": "red", "note": ""}
    assert event.metrics == {"price": 19.9, "qty": -2.0, "e": 1000.0}


def test_whole_prefix_is_stripped_not_one_character_less() -> None:
    # The original connector checked four characters and stripped five.
    event = event_of(f"{BASE}&evat_page=home&evatx=1")
    assert event.attributes == {"page": "home"}


@pytest.mark.parametrize("prefix", ["evat_", "evmt_", "usat_", "enat_", "enmt_"])
def test_empty_names_are_refused(prefix: str) -> None:
    assert refusal(f"{BASE}&{prefix}=1") == f"{prefix}: the name after the prefix is empty"


def test_attribute_key_length() -> None:
    assert event_of(f"{BASE}&evat_{'k' * 50}=v").attributes == {"k" * 50: "v"}
    assert refusal(f"{BASE}&evat_{'k' * 51}=v") == (
        f"evat_{'k' * 51}: name is 51 characters; Pinpoint allows 50"
    )


def test_event_attribute_value_length() -> None:
    assert event_of(f"{BASE}&evat_a={'v' * 200}").attributes["a"] == "v" * 200
    assert refusal(f"{BASE}&evat_a={'v' * 201}") == (
        "evat_a: value is 201 characters; Pinpoint allows 200"
    )


@pytest.mark.parametrize("encoded", ["%00", "%0A", "%C2%85", "%EF%BF%BE", "%EF%BF%BF"])
def test_values_may_not_carry_what_sqs_or_pinpoint_cannot_store(encoded: str) -> None:
    assert refusal(f"{BASE}&evat_a=x{encoded}y") == (
        "evat_a: value contains a control or non-character code point"
    )


def test_lone_surrogates_are_refused_not_crashed_on() -> None:
    params = {"event": ["view"], "endpoint_id": ["ep-1"], "evat_a": ["x\ud800"]}
    with pytest.raises(HitRefusedError, match="control or non-character"):
        parse_hit(params, HitPolicy(), NOW)
    params = {"event": ["view"], "endpoint_id": ["ep-1"], "evat_\ud800": ["x"]}
    with pytest.raises(HitRefusedError, match="name must be printable"):
        parse_hit(params, HitPolicy(), NOW)


@pytest.mark.parametrize("name", ["endpoint_id", "event_id", "user_id"])
def test_identifiers_may_not_end_in_a_newline(name: str) -> None:
    query = f"event=view&endpoint_id=ep-1&{name}=abc%0A".replace(
        "endpoint_id=ep-1&endpoint_id", "endpoint_id"
    )
    assert refusal(query, allow_anonymous_user_id=True) == (
        f"{name}: must be printable ASCII without spaces"
    )


@pytest.mark.parametrize("value", ["1%0A", "%D9%A1%D9%A2"])  # a final newline; Arabic-Indic 12
def test_metrics_are_ascii_decimals_only(value: str) -> None:
    assert refusal(f"{BASE}&evmt_n={value}") == "evmt_n: must be a decimal number"


def test_long_parameter_names_are_shortened_in_the_reason() -> None:
    reason = refusal(f"{BASE}&evat_{'k' * 300}=v")
    assert reason.startswith("evat_" + "k" * 56 + "...: name is 300 characters")


def test_forty_attribute_and_metric_keys_per_event() -> None:
    keys = "&".join([f"evat_a{i}=v" for i in range(20)] + [f"evmt_m{i}=1" for i in range(20)])
    assert len(event_of(f"{BASE}&{keys}").attributes) == 20
    assert refusal(f"{BASE}&{keys}&evmt_extra=1") == (
        "evat_/evmt_: 41 attributes and metrics; Pinpoint allows 40 per event"
    )


@pytest.mark.parametrize("value", ["abc", "1,5", "0x10", "1_000", "", "nan", "inf", "Infinity"])
def test_metrics_must_be_decimal_numbers(value: str) -> None:
    assert refusal(f"{BASE}&evmt_price={value}") == "evmt_price: must be a decimal number"


def test_metrics_must_be_finite() -> None:
    assert refusal(f"{BASE}&evmt_price=1e999") == "evmt_price: must be a finite number"


def test_refusals_never_echo_the_value() -> None:
    secret = "s3cr3t-value-" + "x" * 200
    assert secret not in refusal(f"{BASE}&evat_a={secret}")


# Profile writes (secure by default) ---------------------------------------------------------


@pytest.mark.parametrize(
    ("parameter", "setting"),
    [
        ("usat_plan", "ALLOWED_USER_ATTRIBUTES"),
        ("enat_plan", "ALLOWED_ENDPOINT_ATTRIBUTES"),
        ("enmt_visits", "ALLOWED_ENDPOINT_METRICS"),
    ],
)
def test_anonymous_profile_writes_are_refused_by_default(parameter: str, setting: str) -> None:
    assert refusal(f"{BASE}&{parameter}=1") == (
        f"{parameter}: anonymous hits may not write this profile attribute (not in {setting})"
    )


def test_allowlisted_profile_attributes_are_accepted_with_several_values() -> None:
    event = event_of(
        f"{BASE}&usat_interests=music&usat_interests=travel&usat_interests=music"
        "&enat_plan=gold&enmt_visits=3",
        allowed_user_attributes=frozenset({"interests"}),
        allowed_endpoint_attributes=frozenset({"plan"}),
        allowed_endpoint_metrics=frozenset({"visits"}),
    )
    assert event.profile.user_attributes == {"interests": ("music", "travel")}
    assert event.profile.endpoint_attributes == {"plan": ("gold",)}
    assert event.profile.endpoint_metrics == {"visits": 3.0}


def test_empty_profile_values_are_refused_rather_than_blanking_the_profile() -> None:
    policy = {"allowed_user_attributes": frozenset({"plan"})}
    assert refusal(f"{BASE}&usat_plan=", **policy) == "usat_plan: value is empty"


def test_allowlist_is_exact_per_attribute() -> None:
    policy = {"allowed_user_attributes": frozenset({"plan"})}
    assert "not in ALLOWED_USER_ATTRIBUTES" in refusal(f"{BASE}&usat_Plan=x", **policy)


def test_profile_attribute_value_limits() -> None:
    policy = {"allowed_user_attributes": frozenset({"tags"})}
    assert refusal(f"{BASE}&usat_tags={'v' * 101}", **policy) == (
        "usat_tags: value is 101 characters; Pinpoint allows 100"
    )
    many = "&".join(f"usat_tags=t{i}" for i in range(51))
    assert refusal(f"{BASE}&{many}", **policy) == "usat_tags: 51 values; Pinpoint allows 50"


def test_profile_update_size_is_bounded_by_pinpoints_15_kb() -> None:
    names = [f"a{i}" for i in range(4)]
    values = "&".join(f"usat_{n}=" + "v" * 100 for n in names for _ in range(1))
    many_values = "&".join(f"usat_{n}=v{j:03d}{'x' * 96}" for n in names for j in range(40))
    policy = {"allowed_user_attributes": frozenset(names)}
    assert event_of(f"{BASE}&{values}", **policy).profile.user_attributes
    assert refusal(f"{BASE}&{many_values}", **policy).startswith("usat_/enat_: profile update is ")


def test_user_id_is_an_identity_write_refused_for_anonymous_hits() -> None:
    assert refusal(f"{BASE}&user_id=u-1") == (
        "user_id: anonymous hits may not link an endpoint to a user (ALLOW_ANONYMOUS_USER_ID)"
    )
    assert event_of(f"{BASE}&user_id=u-1", allow_anonymous_user_id=True).profile.user_id == "u-1"


@pytest.mark.parametrize(
    "parameter", ["address", "Address", "channel_type", "ChannelType", "opt_out", "OptOut"]
)
def test_delivery_fields_cannot_be_set(parameter: str) -> None:
    assert refusal(f"{BASE}&{parameter}=x") == (
        f"{parameter}: delivery fields cannot be set from a pixel"
    )


# Unknown and ignored parameters -------------------------------------------------------------


def test_unknown_parameters_are_ignored_and_reported() -> None:
    hit = accept(f"{BASE}&utm_source=news&gtmcb=123456")
    assert hit.unknown_parameters == ("utm_source",)


def test_strict_mode_refuses_unknown_parameters_but_not_ignored_ones() -> None:
    assert refusal(f"{BASE}&utm_source=news", strict_parameters=True) == (
        "utm_source: unknown parameter (strict mode)"
    )
    hit = accept(
        f"{BASE}&gtmcb=1&cb=2",
        strict_parameters=True,
        ignored_parameters=frozenset({"gtmcb", "cb"}),
    )
    assert hit.unknown_parameters == ()


# Values GTM invents for an unset variable (issue 10) -----------------------------------------


@pytest.mark.parametrize("prefix", ["usat_", "enat_"])
@pytest.mark.parametrize("invented", ["undefined", "null"])
def test_profile_values_gtm_invents_are_refused_like_empty_ones(prefix: str, invented: str) -> None:
    policy = {
        "allowed_user_attributes": frozenset({"plan"}),
        "allowed_endpoint_attributes": frozenset({"plan"}),
    }
    with pytest.raises(HitRefusedError) as caught:
        accept(f"{BASE}&{prefix}plan={invented}", **policy)
    assert str(caught.value) == (
        f'{prefix}plan: value is "{invented}", what GTM writes for an unset variable; '
        "leave the parameter out instead"
    )
    assert caught.value.parameter == f"{prefix}plan"
    assert caught.value.code == "undefined_value"  # distinct from an empty value's
    # Among other values too: one invented value is enough to refuse the write.
    with pytest.raises(HitRefusedError):
        accept(f"{BASE}&{prefix}plan=gold&{prefix}plan={invented}", **policy)


@pytest.mark.parametrize("lookalike", ["Undefined", "NULL", " null", "undefined ", "nullable"])
def test_only_the_exact_invented_texts_are_refused(lookalike: str) -> None:
    policy = {"allowed_user_attributes": frozenset({"plan"})}
    query = f"{BASE}&usat_plan={lookalike.replace(' ', '%20')}"
    assert event_of(query, **policy).profile.user_attributes == {"plan": (lookalike,)}


def test_event_attributes_and_metrics_gtm_invents_are_dropped_and_listed() -> None:
    hit = accept(f"{BASE}&evat_page=undefined&evat_ref=null&evat_kept=home&evmt_value=undefined")
    assert hit.event.attributes == {"kept": "home"}
    assert hit.event.metrics == {}
    assert hit.dropped_parameters == ("evat_page", "evat_ref", "evmt_value")
    assert accept(f"{BASE}&evat_kept=home").dropped_parameters == ()


def test_dropped_attributes_do_not_count_towards_the_forty_keys() -> None:
    keys = "&".join(f"evat_a{i}=v" for i in range(40))
    hit = accept(f"{BASE}&{keys}&evat_extra=undefined")
    assert len(hit.event.attributes) == 40


def test_the_pixel_counts_dropped_attributes(capsys: pytest.CaptureFixture[str]) -> None:
    from chalicelib.pixel import Gate, PixelService
    from chalicelib.queue import EventQueue

    class Recorded(EventQueue):
        def __init__(self) -> None:
            self.sent: list[Event] = []

        def send(self, event: Event) -> None:
            self.sent.append(event)

    queue = Recorded()
    service = PixelService(Gate(HitPolicy()), queue, clock=lambda: NOW)
    answer = service.handle(parse_qs(f"{BASE}&evat_page=undefined&evat_ref=null&evat_a=b"))
    assert answer.status_code == 200
    [event] = queue.sent
    assert event.attributes == {"a": "b"}
    metrics = [json.loads(line) for line in capsys.readouterr().out.splitlines() if "_aws" in line]
    assert any(doc.get("UndefinedAttributesDropped") in (2.0, [2.0]) for doc in metrics)


# Lengths in UTF-16 code units, as a Java service counts them (issue 10) ----------------------

EMOJI = "%F0%9F%98%80"  # U+1F600: one code point, two UTF-16 units


def test_event_attribute_length_counts_utf16_units() -> None:
    assert event_of(f"{BASE}&evat_a={EMOJI * 100}").attributes["a"] == "\U0001f600" * 100
    assert refusal(f"{BASE}&evat_a={EMOJI * 101}") == (
        "evat_a: value is 202 UTF-16 units (101 characters); Pinpoint allows 200"
    )
    bmp = "%E2%82%AC"  # "€": one unit
    assert event_of(f"{BASE}&evat_a={bmp * 200}").attributes["a"] == "\u20ac" * 200


def test_profile_value_length_counts_utf16_units() -> None:
    policy = {"allowed_user_attributes": frozenset({"tags"})}
    assert event_of(f"{BASE}&usat_tags={'%C3%A9' * 100}", **policy).profile.user_attributes
    assert refusal(f"{BASE}&usat_tags=x{EMOJI * 50}", **policy) == (
        "usat_tags: value is 101 UTF-16 units (51 characters); Pinpoint allows 100"
    )


def test_names_and_event_types_count_utf16_units() -> None:
    assert refusal(f"{BASE}&evat_{EMOJI * 26}=v").endswith(
        "name is 52 UTF-16 units (26 characters); Pinpoint allows 50"
    )
    assert event_of(f"{BASE}&evat_{EMOJI * 25}=v").attributes == {"\U0001f600" * 25: "v"}
    assert refusal(f"event={EMOJI * 26}&endpoint_id=ep-1") == (
        "event: is 52 UTF-16 units (26 characters); the limit is 50"
    )
