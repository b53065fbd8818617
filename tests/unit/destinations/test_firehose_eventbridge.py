"""Firehose and EventBridge destinations: packing to each service's limits, reading results."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.destinations import eventbridge, firehose, registry
from chalicelib.destinations.base import record_line
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import Outcome, Verdict
from tests import factories
from tests.botocore_checks import assert_model_accepts
from tests.service_messages import (
    QUOTE,
    answering,
    assert_reason_without_secrets,
    refused,
    victim,
)
from tests.strategies.messages import BODIES, PROPERTIES, body_of, decoded, valid_document


def make_event(number: int, note: str = "", event_type: str = "view") -> Event:
    attributes = {"note": note} if note else {}
    return factories.make_event(
        number, event_type=event_type, received_at="x", attributes=attributes
    )


def throttled(operation: str) -> ClientError:
    response: Any = {
        "Error": {"Code": "ThrottlingException"},
        "ResponseMetadata": {"HTTPStatusCode": 400},
    }
    return ClientError(response, operation)


class FakeFirehose:
    def __init__(self, failing: set[int] | None = None) -> None:
        self.calls: list[list[bytes]] = []
        self.failing = failing or set()
        self.error: Exception | None = None

    def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> Any:  # noqa: N803
        self.calls.append([r["Data"] for r in Records])
        if self.error is not None:
            raise self.error
        answers: list[dict[str, str]] = []
        for record in Records:
            number = json.loads(record["Data"])["event_id"]
            if int(number.split("-")[1]) in self.failing:
                answers.append({"ErrorCode": "ServiceUnavailableException", "ErrorMessage": "busy"})
            else:
                answers.append({"RecordId": "r"})
        return {"FailedPutCount": len(self.failing), "RequestResponses": answers}


def test_firehose_packs_500_records_a_call_one_json_line_each() -> None:
    fake = FakeFirehose()
    outcomes = firehose.FirehoseDestination(fake, "s").deliver([make_event(i) for i in range(1201)])  # type: ignore[arg-type]
    assert [len(call) for call in fake.calls] == [500, 500, 201]
    assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}
    record = fake.calls[0][0]
    assert record.endswith(b"\n")
    assert json.loads(record)["event_id"] == "e-0"


def test_firehose_cuts_calls_at_four_megabytes() -> None:
    fake = FakeFirehose()
    wide = {f"k{j:02d}": "v" * 200 for j in range(40)}  # about 9 KB a record
    events = [Event(f"e-{i}", "view", "ep", "t", "x", attributes=wide) for i in range(500)]
    firehose.FirehoseDestination(fake, "s").deliver(events)  # type: ignore[arg-type]
    assert len(fake.calls) == 2  # 500 records would be 4.5 MB base64-encoded
    assert sum(len(call) for call in fake.calls) == 500
    assert all(sum(len(r) * 4 / 3 for r in call) < 4_000_000 for call in fake.calls)


def test_firehose_rejects_a_record_over_1000_kib_and_sends_the_rest() -> None:
    fake = FakeFirehose()
    huge = Event(
        "e-0", "view", "ep", "t", "x", attributes={f"k{i}": "v" * 200 for i in range(6000)}
    )
    outcomes = firehose.FirehoseDestination(fake, "s").deliver([huge, make_event(1)])  # type: ignore[arg-type]
    assert outcomes[0].verdict is Verdict.REJECTED
    assert "Firehose allows 1024000" in outcomes[0].reason
    assert outcomes[1].verdict is Verdict.DELIVERED
    assert len(fake.calls[0]) == 1


def test_firehose_per_record_failures_are_retried_alone() -> None:
    fake = FakeFirehose(failing={2})
    outcomes = firehose.FirehoseDestination(fake, "s").deliver([make_event(i) for i in range(4)])  # type: ignore[arg-type]
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 2 + [Verdict.RETRY] + [
        Verdict.DELIVERED
    ]
    assert outcomes[2].reason == "PutRecordBatch record failed: ServiceUnavailableException"


@pytest.mark.parametrize(
    "error", [throttled("PutRecordBatch"), EndpointConnectionError(endpoint_url="http://x")]
)
def test_firehose_request_failures_retry_everything(error: Exception) -> None:
    fake = FakeFirehose()
    fake.error = error
    outcomes = firehose.FirehoseDestination(fake, "s").deliver([make_event(1), make_event(2)])  # type: ignore[arg-type]
    assert {o.verdict for o in outcomes} == {Verdict.RETRY}
    assert outcomes[0].reason.startswith("PutRecordBatch failed:")


def test_firehose_starts_no_call_without_time_to_finish() -> None:
    fake = FakeFirehose()
    destination = firehose.FirehoseDestination(fake, "s", call_budget_ms=10_000)  # type: ignore[arg-type]
    outcomes = destination.deliver([make_event(1)], time_left=lambda: 5_000)
    assert fake.calls == []
    assert outcomes[0].reason == "out of time"


class FakeBus:
    def __init__(self, errors: dict[str, str] | None = None) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.errors = errors or {}

    def put_events(self, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
        self.calls.append(Entries)
        answers = []
        for entry in Entries:
            code = self.errors.get(json.loads(entry["Detail"])["event_id"])
            answers.append({"ErrorCode": code, "ErrorMessage": "m"} if code else {"EventId": "1"})
        return {"FailedEntryCount": 0, "Entries": answers}


def test_eventbridge_sends_ten_entries_a_call_with_type_as_detail_type() -> None:
    fake = FakeBus()
    events = [make_event(i, event_type="purchase") for i in range(25)]
    outcomes = eventbridge.EventBridgeDestination(fake, "bus", "pixel-relay").deliver(events)  # type: ignore[arg-type]
    assert [len(call) for call in fake.calls] == [10, 10, 5]
    entry = fake.calls[0][0]
    assert (entry["Source"], entry["DetailType"], entry["EventBusName"]) == (
        "pixel-relay",
        "purchase",
        "bus",
    )
    assert json.loads(entry["Detail"])["event_id"] == "e-0"
    assert entry["Time"].isoformat() == "2026-11-28T11:00:00+00:00"
    assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}


def test_eventbridge_keeps_requests_under_256_kb() -> None:
    fake = FakeBus()
    events = [
        Event(
            f"e-{i}", "view", "ep", "2026-11-28T11:00:00.000Z", "x", attributes={"a": "v" * 60_000}
        )
        for i in range(10)
    ]
    eventbridge.EventBridgeDestination(fake, "bus", "s").deliver(events)  # type: ignore[arg-type]
    sizes = [sum(eventbridge.entry_size(e) for e in call) for call in fake.calls]
    assert [len(call) for call in fake.calls] == [4, 4, 2]
    assert all(size <= 256 * 1024 for size in sizes)


def test_eventbridge_entry_errors_retry_or_reject() -> None:
    fake = FakeBus({"e-1": "ThrottlingException", "e-2": "MalformedDetail"})
    outcomes = eventbridge.EventBridgeDestination(fake, "bus", "s").deliver(  # type: ignore[arg-type]
        [make_event(i) for i in range(3)]
    )
    assert [(o.verdict, o.reason) for o in outcomes] == [
        (Verdict.DELIVERED, ""),
        (Verdict.RETRY, "PutEvents entry failed: ThrottlingException"),
        (Verdict.REJECTED, "PutEvents entry failed: MalformedDetail"),
    ]


def test_eventbridge_rejects_an_entry_over_256_kb() -> None:
    fake = FakeBus()
    huge = Event(
        "e-0", "view", "ep", "2026-11-28T11:00:00.000Z", "x", attributes={"a": "v" * 300_000}
    )
    [outcome] = eventbridge.EventBridgeDestination(fake, "bus", "s").deliver([huge])  # type: ignore[arg-type]
    assert outcome.verdict is Verdict.REJECTED
    assert fake.calls == []


def test_destination_names_and_settings_fail_fast_naming_the_variable() -> None:
    assert registry.parse_names("pinpoint, firehose,pinpoint") == ("pinpoint", "firehose")
    with pytest.raises(ConfigError, match="DESTINATIONS: unknown kafka"):
        registry.parse_names("kafka")
    with pytest.raises(ConfigError, match="FIREHOSE_STREAM: is required"):
        registry.plugin("firehose").parse({})
    settings = eventbridge.EventBridge.parse({})
    assert (settings.bus, settings.source) == ("default", "pixel-relay")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"FIREHOSE_STREAM": "has space"}, "FIREHOSE_STREAM: must match [a-zA-Z0-9_.-]+"),
        ({"FIREHOSE_STREAM": "s" * 65}, "FIREHOSE_STREAM: must be 1-64 characters"),
        ({"FIREHOSE_STREAM": "a/b"}, "FIREHOSE_STREAM: must match"),
        ({"EVENTBRIDGE_BUS": "team/bus"}, "EVENTBRIDGE_BUS: must match"),
        # A bus's name has at most 256 characters (its own shape, EventBusName); PutEvents'
        # 1,600 are for an ARN.
        ({"EVENTBRIDGE_BUS": "b" * 257}, "EVENTBRIDGE_BUS: must be 1-256 characters"),
        ({"EVENTBRIDGE_BUS": "b" * 1601}, "EVENTBRIDGE_BUS: must be 1-256 characters"),
        (
            {"EVENTBRIDGE_BUS": "arn:aws:events:eu-west-1:123456789012:event-bus/" + "b" * 257},
            "EVENTBRIDGE_BUS: the name in the ARN must be 1-256 characters",
        ),
        (
            {"EVENTBRIDGE_BUS": "arn:aws:events:eu-west-1:123456789012:event-bus/" + "b" * 1600},
            "EVENTBRIDGE_BUS: must be 1-1600 characters",
        ),
        (
            {"EVENTBRIDGE_BUS": "arn:aws:events:eu-west-1:1234:event-bus/central"},
            "EVENTBRIDGE_BUS: must match",
        ),
        (
            {"EVENTBRIDGE_BUS": "arn:aws:sqs:eu-west-1:123456789012:event-bus/central"},
            "EVENTBRIDGE_BUS: must match",
        ),
        ({"EVENTBRIDGE_SOURCE": "aws.pixel"}, "EVENTBRIDGE_SOURCE: may not start with aws."),
        ({"EVENTBRIDGE_SOURCE": "AWS.ec2"}, "EVENTBRIDGE_SOURCE: may not start with aws."),
        ({"EVENTBRIDGE_SOURCE": "my source"}, "EVENTBRIDGE_SOURCE: must be letters"),
    ],
)
def test_resource_names_are_checked_against_the_service_model(
    changes: dict[str, str], message: str
) -> None:
    environ = {"FIREHOSE_STREAM": "events", **changes}
    with pytest.raises(ConfigError) as caught:
        registry.configure(("firehose", "eventbridge"), environ)
    assert str(caught.value).startswith(message)


@pytest.mark.parametrize(
    "bus",
    [
        "central",
        "pixel-relay.dev_1",
        "arn:aws:events:eu-west-1:123456789012:event-bus/central",
        "arn:aws-cn:events:cn-north-1:123456789012:event-bus/default",
        "b" * 256,
        "arn:aws:events:eu-west-1:123456789012:event-bus/" + "b" * 256,
    ],
)
def test_an_eventbridge_bus_may_be_a_name_or_an_arn(bus: str) -> None:
    """A bus in another account can only be named by its ARN."""
    settings = eventbridge.EventBridge.parse({"EVENTBRIDGE_BUS": bus})
    assert settings.bus == bus


def test_an_eventbridge_source_that_merely_contains_aws_is_fine() -> None:
    settings = eventbridge.EventBridge.parse({"EVENTBRIDGE_SOURCE": "shop.aws.events"})
    assert settings.source == "shop.aws.events"


# One event's bad field, or one surprise, costs only that event or that call ---------------


def test_eventbridge_rejects_an_event_whose_entry_cannot_be_built_and_sends_the_rest() -> None:
    fake = FakeBus()
    events = [make_event(i) for i in range(3)]
    events[1] = replace(events[1], timestamp="2026-11-30 10:00:00 UTC")  # got past decode
    outcomes = eventbridge.EventBridgeDestination(fake, "bus", "pixel-relay").deliver(events)  # type: ignore[arg-type]
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.REJECTED, Verdict.DELIVERED]
    assert outcomes[1].reason == "eventbridge could not build the entry: ValueError"
    assert "2026-11-30" not in outcomes[1].reason  # the type of error, never the value
    assert [json.loads(e["Detail"])["event_id"] for e in fake.calls[0]] == ["e-0", "e-2"]


def test_firehose_rejects_a_record_that_cannot_be_encoded_and_sends_the_rest() -> None:
    fake = FakeFirehose()
    events = [make_event(1), make_event(2, note="\ud800"), make_event(3)]  # a lone surrogate
    outcomes = firehose.FirehoseDestination(fake, "s").deliver(events)  # type: ignore[arg-type]
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.REJECTED, Verdict.DELIVERED]
    assert outcomes[1].reason == "firehose could not build the record: UnicodeEncodeError"
    assert len(fake.calls[0]) == 2


def test_eventbridge_entry_botocore_refuses_is_found_by_halving_and_rejected_alone() -> None:
    class Validating(FakeBus):
        def put_events(self, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
            if any(json.loads(e["Detail"])["event_id"] == "e-6" for e in Entries):
                raise ParamValidationError(report="Invalid length for parameter DetailType")
            return super().put_events(Entries)

    fake = Validating()
    events = [make_event(i) for i in range(10)]
    outcomes = eventbridge.EventBridgeDestination(fake, "bus", "pixel-relay").deliver(events)  # type: ignore[arg-type]
    assert outcomes[6] == Outcome(
        Verdict.REJECTED, "eventbridge could not build the request: ParamValidationError"
    )
    assert [o.verdict for i, o in enumerate(outcomes) if i != 6] == [Verdict.DELIVERED] * 9
    sent = [json.loads(e["Detail"])["event_id"] for call in fake.calls for e in call]
    assert sorted(sent) == [f"e-{i}" for i in range(10) if i != 6]  # each accepted once


def test_an_unexpected_exception_retries_that_call_only() -> None:
    class Surprising(FakeFirehose):
        def put_record_batch(self, DeliveryStreamName: str, Records: list[dict[str, bytes]]) -> Any:  # noqa: N803
            if len(self.calls) == 0:
                self.calls.append([r["Data"] for r in Records])
                raise KeyError("something botocore never raises")
            return super().put_record_batch(DeliveryStreamName, Records)

    fake = Surprising()
    outcomes = firehose.FirehoseDestination(fake, "s").deliver([make_event(i) for i in range(501)])  # type: ignore[arg-type]
    assert {o.reason for o in outcomes[:500]} == {"firehose call failed: KeyError"}
    assert {o.verdict for o in outcomes[:500]} == {Verdict.RETRY}
    assert outcomes[500].verdict is Verdict.DELIVERED


# Any event the consumer can decode becomes a record or entry botocore sends --------------


def assert_firehose_and_eventbridge_accept(event: Event) -> None:
    record = record_line(event)
    assert len(record) <= firehose.MAX_RECORD_BYTES
    assert_model_accepts(
        "firehose", "PutRecordBatch", {"DeliveryStreamName": "s", "Records": [{"Data": record}]}
    )
    entry = eventbridge.entry_for(event, "default", "pixel-relay")
    assert eventbridge.entry_size(entry) <= eventbridge.MAX_BYTES
    assert entry["Time"].tzinfo is not None
    assert_model_accepts("events", "PutEvents", {"Entries": [entry]})


@PROPERTIES
@given(st.one_of(BODIES, valid_document().map(lambda document: body_of(document, False))))
def test_any_event_that_decodes_is_a_record_and_an_entry_botocore_sends(body: str) -> None:
    event = decoded(body)
    if event is not None:
        assert_firehose_and_eventbridge_accept(event)


# A service's error message never reaches a reason (docs/operations.md#logs) -----------------


@pytest.mark.parametrize(
    ("deliver", "answer", "reason"),
    [
        (
            lambda answer: eventbridge.EventBridgeDestination(
                answering(answer), "bus", "pixel-relay"
            ).deliver([victim()]),
            {
                "FailedEntryCount": 1,
                "Entries": [{"ErrorCode": "InvalidArgument", "ErrorMessage": QUOTE}],
            },
            "PutEvents entry failed: InvalidArgument",
        ),
        (
            lambda answer: firehose.FirehoseDestination(answering(answer), "s").deliver([victim()]),
            {
                "FailedPutCount": 1,
                "RequestResponses": [
                    {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": QUOTE}
                ],
            },
            "PutRecordBatch record failed: ServiceUnavailableException",
        ),
        (
            lambda answer: firehose.FirehoseDestination(answering(answer), "s").deliver([victim()]),
            refused(404, "ResourceNotFoundException", "PutRecordBatch"),
            "PutRecordBatch failed: 404 ResourceNotFoundException",
        ),
    ],
    ids=["eventbridge entry", "firehose record", "firehose request"],
)
def test_a_reason_keeps_the_services_code_and_drops_its_message(
    deliver: Any, answer: dict[str, Any] | Exception, reason: str
) -> None:
    [outcome] = deliver(answer)
    assert_reason_without_secrets(outcome, reason)
