"""Property tests of the queue message contract (issue 10, "one bad field never fails a batch").

Any body, however mangled, either decodes to an Event that every destination's request builder
accepts (and that botocore's own model of the request accepts and serialises), or is a
MessageError; and every event the pixel accepts decodes back from its message unchanged.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import hypothesis
from hypothesis import currently_in_test_context, example, given
from hypothesis import strategies as st

from chalicelib import limits
from chalicelib.destinations import pinpoint
from chalicelib.destinations.base import record_line
from chalicelib.destinations.customer_profiles import object_type as customer_profiles
from chalicelib.events import Event
from chalicelib.hits import AcceptedHit, HitPolicy, HitRefusedError, parse_hit
from chalicelib.rules import utf16_length
from tests.botocore_checks import assert_model_accepts
from tests.strategies.hits import NOW, POLICY, hits
from tests.strategies.messages import BODIES, PROPERTIES, body_of, decoded, valid_document

# What every destination's request builder must accept -------------------------------------


def assert_within_pinpoint_quotas(event: Event) -> None:
    """Pinpoint drops an event beyond these without saying so: decode never lets one by."""
    assert len(event.attributes) + len(event.metrics) <= limits.EVENT_ATTRIBUTE_AND_METRIC_KEYS
    for key in [*event.attributes, *event.metrics]:
        assert 0 < utf16_length(key) <= limits.ATTRIBUTE_KEY_LENGTH
    for value in event.attributes.values():
        assert utf16_length(value) <= limits.EVENT_ATTRIBUTE_VALUE_LENGTH
    assert all(math.isfinite(v) for v in [*event.metrics.values()])
    assert not event.event_type.startswith("_")
    assert 0 < utf16_length(event.event_type) <= limits.EVENT_TYPE_LENGTH
    profile = event.profile
    for values in [*profile.user_attributes.values(), *profile.endpoint_attributes.values()]:
        assert 0 < len(values) <= limits.VALUES_PER_ATTRIBUTE
        for value in values:
            assert 0 < utf16_length(value) <= limits.ENDPOINT_ATTRIBUTE_VALUE_LENGTH
            assert value not in ("undefined", "null")
    assert all(math.isfinite(v) for v in profile.endpoint_metrics.values())


def assert_every_destination_accepts(event: Event) -> None:
    assert_within_pinpoint_quotas(event)
    plan = pinpoint.plan_requests([event])
    assert not plan.settled
    for request in plan.requests:
        assert_model_accepts(
            "pinpoint",
            "PutEvents",
            {"ApplicationId": "app-1", "EventsRequest": {"BatchItem": request.batch_item}},
        )

    json.loads(record_line(event))  # every stream destination's record (their own tests
    # check their requests against these same bodies, tests/unit/destinations/)

    body = json.dumps(
        customer_profiles.profile_object(event), separators=(",", ":"), ensure_ascii=False
    )
    assert len(body) <= customer_profiles.MAX_OBJECT_CHARS
    assert_model_accepts(
        "customer-profiles",
        "PutProfileObject",
        {"DomainName": "pixel-relay", "ObjectTypeName": "PixelRelayEvent", "Object": body},
    )


def decode(body: str) -> Event | None:
    event = decoded(body)
    note("decoded" if event is not None else "poison")
    return event


def note(label: str) -> None:
    if currently_in_test_context():
        hypothesis.event(label)


# Properties -------------------------------------------------------------------------------


@PROPERTIES
@given(BODIES)
@example(body_of({"version": 1, "timestamp": "2026-11-30 10:00:00 UTC"}, True))
@example('{"version":1,"metrics":{"m":1e400}}')
@example('{"version":1,"metrics":{"m":' + "9" * 400 + "}}")
def test_any_body_decodes_to_an_event_every_destination_accepts_or_is_poison(body: str) -> None:
    event = decode(body)
    if event is None:
        return
    assert_every_destination_accepts(event)
    # Decoding normalises once: what the consumer re-queues decodes to the same event.
    assert Event.from_message(event.to_message()) == event


@PROPERTIES
@given(valid_document())
def test_every_body_the_pixel_could_write_decodes(document: dict[str, Any]) -> None:
    """The generator of valid bodies is valid: the property above is not vacuous."""
    event = decode(body_of(document, ascii_only=False))
    assert event is not None
    assert_every_destination_accepts(event)


SIGNED = st.builds(
    HitPolicy,
    allowed_user_attributes=st.just(frozenset({"lang", "tier", "a" * 50})),
    allowed_endpoint_attributes=st.just(frozenset({"lang", "tier", "a" * 50})),
    allowed_endpoint_metrics=st.just(frozenset({"lang", "tier", "a" * 50})),
    allow_anonymous_user_id=st.just(True),
)


@PROPERTIES
@given(hits(), st.one_of(POLICY, SIGNED))
def test_every_event_the_pixel_accepts_survives_the_queue_unchanged(
    params: dict[str, list[str]], policy: HitPolicy
) -> None:
    hit = _accepted(lambda: parse_hit(params, policy, NOW, make_event_id=lambda: "id-1"))
    note("refused" if hit is None else "accepted")
    if hit is None:
        return
    assert Event.from_message(hit.event.to_message()) == hit.event
    assert_every_destination_accepts(hit.event)


def _accepted(parse: Callable[[], AcceptedHit]) -> AcceptedHit | None:
    try:
        return parse()
    except HitRefusedError:
        return None
