"""Property-based tests of parse_hit over hostile query strings.

Whatever arrives, the answer is an AcceptedHit or a HitRefusedError, never another exception;
and every accepted event keeps every Pinpoint quota and travels through SQS intact.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from urllib.parse import parse_qs, quote

import pytest
from hypothesis import currently_in_test_context, event, example, given, settings
from hypothesis import strategies as st

from chalicelib import limits
from chalicelib.events import Event
from chalicelib.hits import (
    AcceptedHit,
    HitPolicy,
    HitRefusedError,
    parse_hit,
)
from chalicelib.rules import INVENTED_VALUES, utf16_length
from tests.strategies.hits import NOW, POLICY, TEXT, VALUES, hits

# FUZZ_EXAMPLES=20000 for a deep local run; CI runs the same examples every time.
FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")),
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
)
# What an SQS message body may hold: #x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD #x10000-#x10FFFF.
SQS_FORBIDDEN = re.compile("[^\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")


def note(label: str) -> None:
    """Hypothesis's event statistics, when running under Hypothesis (plain tests reuse the
    checks below)."""
    if currently_in_test_context():
        event(label)


def parse(params: Mapping[str, Sequence[str]], policy: HitPolicy) -> AcceptedHit | None:
    """parse_hit, with any exception other than a refusal failing the test."""
    refusal: HitRefusedError | None = None
    try:
        return parse_hit(params, policy, NOW, make_event_id=lambda: "generated-id")
    except HitRefusedError as error:
        refusal = error
    assert refusal.code
    note(f"refused: {refusal.code}")
    assert str(refusal).startswith(refusal.parameter[:61])
    assert str(refusal).encode("utf-8", "backslashreplace")
    return None


def assert_identifier(value: str) -> None:
    assert 0 < len(value) <= limits.IDENTIFIER_LENGTH
    assert re.fullmatch(r"[\x21-\x7e]+", value)


def assert_instant(value: str, earliest: datetime, latest: datetime) -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", value)
    instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    assert earliest - timedelta(milliseconds=1) <= instant <= latest


def assert_within_pinpoint_limits(hit: AcceptedHit, policy: HitPolicy) -> None:
    event = hit.event
    assert 0 < utf16_length(event.event_type) <= limits.EVENT_TYPE_LENGTH
    assert not event.event_type.startswith("_")
    assert event.event_type.isprintable()
    assert event.event_type == event.event_type.strip()
    assert_identifier(event.endpoint_id)
    assert_identifier(event.event_id)
    earliest, latest = NOW - policy.max_event_age, NOW + policy.max_clock_ahead
    assert_instant(event.timestamp, earliest, latest)
    if event.session is not None:
        assert_identifier(event.session.id)
        assert_instant(event.session.start, earliest, latest)
        assert event.session.start <= event.timestamp
    assert len(event.attributes) + len(event.metrics) <= limits.EVENT_ATTRIBUTE_AND_METRIC_KEYS
    for key in [*event.attributes, *event.metrics]:
        assert 0 < utf16_length(key) <= limits.ATTRIBUTE_KEY_LENGTH
    for value in event.attributes.values():
        assert utf16_length(value) <= limits.EVENT_ATTRIBUTE_VALUE_LENGTH
        assert value not in INVENTED_VALUES  # dropped, never recorded
    assert all(math.isfinite(number) for number in event.metrics.values())
    profile = event.profile
    if profile.user_id is not None:
        assert policy.allow_anonymous_user_id
        assert_identifier(profile.user_id)
    for attributes, allowed in (
        (profile.user_attributes, policy.allowed_user_attributes),
        (profile.endpoint_attributes, policy.allowed_endpoint_attributes),
    ):
        for name, values in attributes.items():
            assert name in allowed
            assert 0 < len(values) <= limits.VALUES_PER_ATTRIBUTE
            for value in values:
                assert 0 < utf16_length(value) <= limits.ENDPOINT_ATTRIBUTE_VALUE_LENGTH
                assert value not in INVENTED_VALUES
    assert set(profile.endpoint_metrics) <= policy.allowed_endpoint_metrics
    assert all(math.isfinite(number) for number in profile.endpoint_metrics.values())
    count = (
        len(profile.user_attributes)
        + len(profile.endpoint_attributes)
        + len(profile.endpoint_metrics)
    )
    assert count <= limits.ENDPOINT_ATTRIBUTES


def assert_travels_through_sqs(event: Event) -> None:
    body = event.to_message()
    assert not SQS_FORBIDDEN.search(body), SQS_FORBIDDEN.findall(body)
    assert body.encode("utf-8")  # no lone surrogate can reach the wire
    assert Event.from_message(body) == event


def check(params: Mapping[str, Sequence[str]], policy: HitPolicy) -> None:
    hit = parse(params, policy)
    note("accepted" if hit is not None else "refused")
    if hit is not None:
        assert_within_pinpoint_limits(hit, policy)
        assert_travels_through_sqs(hit.event)


@FUZZ
@given(hits(), POLICY)
@example(
    {"event": ["x"], "endpoint_id": ["e"], "timestamp": ["0001-01-01T00:30:00+23:59"]}, HitPolicy()
)
@example({"event": ["x"], "endpoint_id": ["e"], "evat_\ud800": ["v"]}, HitPolicy())
@example(
    {"event": ["x"], "endpoint_id": ["e"], "usat_lang": ["x"] * 51},
    HitPolicy(allowed_user_attributes=frozenset({"lang"})),
)
def test_any_parameter_mapping_is_accepted_within_limits_or_refused(
    params: dict[str, list[str]], policy: HitPolicy
) -> None:
    check(params, policy)


PERCENT = st.sampled_from(
    [
        "%", "%2", "%G1", "%zz", "%00", "%0a", "%7f", "%c3", "%c3%a9", "%ff%fe", "%ed%a0%80",
        "%ef%bf%be", "%ef%bf%bf", "%f4%8f%bf%bf", "%f4%90%80%80", "%c0%af", "%e2%80%a8", "%25",
        "%26", "%3d", "%2b", "+", "&", "=", ";", "&&", "==", "#", "?", "%u00e9",
    ]
)  # fmt: skip
QUERY_PIECE = st.one_of(
    PERCENT,
    TEXT,
    st.sampled_from(
        ["event=purchase", "endpoint_id=ep-1", "evat_", "evmt_", "usat_lang=", "timestamp="]
    ),
)


@FUZZ
@given(
    st.builds(
        str.__add__,
        st.sampled_from(["", "event=purchase&endpoint_id=ep-1&"]),
        st.lists(QUERY_PIECE, max_size=30).map("".join),
    ),
    POLICY,
)
@example("event=purchase&endpoint_id=ep-1&evat_x=%ed%a0%80", HitPolicy())
@example("event=purchase&endpoint_id=ep-1&evat_%ef%bf%be=1", HitPolicy())
def test_any_query_string_through_parse_qs(query: str, policy: HitPolicy) -> None:
    check(parse_qs(query, keep_blank_values=True), policy)


@FUZZ
@given(st.dictionaries(TEXT, VALUES, max_size=8), POLICY)
def test_any_encoded_query_round_trip(params: dict[str, list[str]], policy: HitPolicy) -> None:
    """What a browser would send for these values (UTF-8, percent-encoded), as API Gateway
    decodes it."""
    pairs = [
        f"{quote(name, errors='surrogatepass')}={quote(value, errors='surrogatepass')}"
        for name, values in {"event": ["purchase"], "endpoint_id": ["ep-1"], **params}.items()
        for value in values
    ]
    check(parse_qs("&".join(pairs), keep_blank_values=True), policy)


# Found by fuzzing: a name with an empty list of values. Not reachable over HTTP (a query
# name always carries at least one value), but within parse_hit's Mapping[str, Sequence[str]]
# contract: it now reads as an empty value.


@pytest.mark.parametrize("name", ["evat_a", "evmt_a", "enmt_a"])
def test_a_name_without_values_is_refused_or_ignored_not_a_crash(name: str) -> None:
    policy = HitPolicy(allowed_endpoint_metrics=frozenset({"a"}))
    check({"event": ["x"], "endpoint_id": ["e"], name: []}, policy)


@pytest.mark.parametrize("name", ["usat_a", "enat_a"])
def test_a_profile_attribute_without_values_is_not_accepted(name: str) -> None:
    policy = HitPolicy(
        allowed_user_attributes=frozenset({"a"}), allowed_endpoint_attributes=frozenset({"a"})
    )
    hit = parse({"event": ["x"], "endpoint_id": ["e"], name: []}, policy)
    assert hit is None or hit.event.profile.is_empty()
