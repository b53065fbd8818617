"""Property tests of the queue message contract (issue 10, "one bad field never fails a batch").

Any body, however mangled, either decodes to an Event that every destination's request builder
accepts (and that botocore's own model of the request accepts and serialises), or is a
MessageError; and every event the pixel accepts decodes back from its message unchanged.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from datetime import UTC, datetime
from functools import cache
from typing import Any

import botocore.session
import hypothesis
from botocore.model import OperationModel
from botocore.serialize import create_serializer
from botocore.validate import ParamValidator
from hypothesis import currently_in_test_context, example, given, settings
from hypothesis import strategies as st

from chalicelib import limits
from chalicelib.destinations import eventbridge, firehose, pinpoint
from chalicelib.destinations.base import record_line
from chalicelib.destinations.customer_profiles import object_type as customer_profiles
from chalicelib.events import Event, EventRecord, MessageError
from chalicelib.hits import AcceptedHit, HitPolicy, HitRefusedError, parse_hit
from chalicelib.rules import format_instant, utf16_length
from tests.unit.test_hits_fuzz import NOW, POLICY, TEXT, hits

PROPERTIES = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")),
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
)

# Building blocks -------------------------------------------------------------------------

EMOJI = "\U0001f600"
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "_session.start",
        "undefined",
        "null",
        "a b",
        "x\n",
        "\x00",
        "\ud800",
        "\ufffe",
        "e" * 51,
        "e" * 120,
        "x" * 129,
        "v" * 201,
        EMOJI * 26,
        EMOJI * 101,
        "\u00e9" * 101,
        "2026-11-30 10:00:00 UTC",
        "yesterday",
        "2026-11-28T10:00:00",
        "2026-11-28",
        "2026-02-30T10:00:00Z",
        "2026-11-28T10:00:00.000Z",
        "2026-11-28T11:00:00+01:00",
        "2026-11-28T10:00:00.1234567Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "1764331200000",
        "2026-W48-6T10:00:00Z",
        "\u0662\u0660\u0662\u0666-11-28T10:00:00Z",
    ]
)
STRING = st.one_of(HOSTILE_TEXT, TEXT)
NUMBER = st.one_of(
    st.integers(-(10**20), 10**20),
    st.integers(10**300, 10**400),
    st.floats(),  # NaN and infinities included: json.dumps writes them, json.loads reads them
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, STRING)
ANY_JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRING, inner, max_size=3),
    max_leaves=8,
)
GOOD_KEY = st.one_of(st.from_regex(r"\A[a-z_]{1,12}\Z"), st.sampled_from(["k" * 50, EMOJI * 25]))
KEY = st.one_of(GOOD_KEY, STRING)
INSTANT = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(format_instant)
IDENTIFIER = st.from_regex(r"\A[\x21-\x7e]{1,128}\Z")
GOOD_VALUE = st.one_of(st.from_regex(r"\A[a-z0-9 ]{0,20}\Z"), st.just(EMOJI * 100))
GOOD_PROFILE_VALUE = st.one_of(st.from_regex(r"\A[a-z0-9]{1,20}\Z"), st.just("\u00e9" * 100))


def valid_document() -> st.SearchStrategy[dict[str, Any]]:
    """A body the pixel could have written."""
    return st.fixed_dictionaries(
        {
            "version": st.just(1),
            "event_id": IDENTIFIER,
            "event_type": st.from_regex(r"\A[a-z.]{1,50}\Z"),
            "endpoint_id": IDENTIFIER,
            "timestamp": INSTANT,
            "received_at": INSTANT,
            "session": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"id": IDENTIFIER, "start": st.just("2000-01-01T00:00:00.000Z")}
                ),
            ),
            "attributes": st.dictionaries(GOOD_KEY, GOOD_VALUE, max_size=4),
            "metrics": st.dictionaries(
                GOOD_KEY, st.floats(allow_nan=False, allow_infinity=False), max_size=4
            ),
            "user_id": st.one_of(st.none(), IDENTIFIER),
            "user_attributes": st.dictionaries(
                GOOD_KEY, st.lists(GOOD_PROFILE_VALUE, min_size=1, max_size=3), max_size=3
            ),
            "endpoint_attributes": st.dictionaries(
                GOOD_KEY, st.lists(GOOD_PROFILE_VALUE, min_size=1, max_size=3), max_size=3
            ),
            "endpoint_metrics": st.dictionaries(GOOD_KEY, st.integers(-5, 5), max_size=3),
        }
    )


MAP_FIELDS = ("attributes", "metrics", "user_attributes", "endpoint_attributes", "endpoint_metrics")
FIELDS = ("version", *EventRecord.__annotations__, "destinations")


@st.composite
def mutated_document(draw: st.DrawFn, names: tuple[str, ...] = FIELDS) -> dict[str, Any]:
    """A valid body with some fields replaced, removed, or given a hostile entry."""
    document = draw(valid_document())
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        how = draw(st.sampled_from(["replace", "remove", "entry", "many", "session"]))
        if how == "remove":
            document.pop(name, None)
        elif how == "entry" and name in MAP_FIELDS:
            value = draw(st.one_of(ANY_JSON, st.lists(STRING, max_size=3)))
            document[name] = {**document[name], draw(KEY): value}
        elif how == "many" and name in MAP_FIELDS:
            many = draw(st.integers(35, 260))
            value = ["v"] if name.endswith("attributes") and name != "attributes" else "v"
            document[name] = {f"k{i}": 1 if "metrics" in name else value for i in range(many)}
        elif how == "session":
            document["session"] = {
                "id": draw(st.one_of(IDENTIFIER, ANY_JSON)),
                "start": draw(st.one_of(INSTANT, STRING, ANY_JSON)),
            }
        else:
            document[name] = draw(ANY_JSON)
    if draw(st.booleans()):
        document[draw(STRING)] = draw(ANY_JSON)  # an unknown field: ignored by version 1
    return document


def body_of(document: Any, ascii_only: bool) -> str:
    return json.dumps(document, ensure_ascii=ascii_only, allow_nan=True)


BODIES = st.one_of(
    st.builds(body_of, mutated_document(), st.booleans()),
    st.builds(body_of, mutated_document(("session", *MAP_FIELDS)), st.booleans()),
    st.builds(body_of, ANY_JSON, st.booleans()),
    st.text(max_size=40),
)

# What every destination's request builder must accept -------------------------------------


@cache
def _operation(service: str, operation: str) -> OperationModel:
    return botocore.session.get_session().get_service_model(service).operation_model(operation)


def assert_model_accepts(service: str, operation: str, params: dict[str, Any]) -> None:
    """botocore's own checks before sending: the model's validation, then serialisation
    (a datetime it cannot write, a body it cannot encode, would raise here)."""
    model = _operation(service, operation)
    assert model.input_shape is not None
    report = ParamValidator().validate(params, model.input_shape)
    assert not report.has_errors(), report.generate_report()
    request = create_serializer(model.metadata["protocol"]).serialize_to_request(params, model)
    assert request["body"] is not None


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

    record = record_line(event)
    assert len(record) <= firehose.MAX_RECORD_BYTES
    assert_model_accepts(
        "firehose", "PutRecordBatch", {"DeliveryStreamName": "s", "Records": [{"Data": record}]}
    )

    entry = eventbridge.entry_for(event, "default", "pixel-relay")
    assert eventbridge.entry_size(entry) <= eventbridge.MAX_BYTES
    assert entry["Time"].tzinfo is not None
    assert_model_accepts("events", "PutEvents", {"Entries": [entry]})

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
    """Event.from_message, with any exception other than MessageError failing the test."""
    try:
        event = Event.from_message(body)
    except MessageError as error:
        reason = str(error)
    else:
        note("decoded")
        return event
    assert reason  # a parked message always says why
    note(f"poison: {reason.split(' ')[0]}")
    return None


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
