"""Kinesis Data Streams destination: packing to PutRecords' quotas, partition keys, and what
each per-record answer means."""

from __future__ import annotations

import base64
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ParamValidationError
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.destinations import kinesis, registry
from chalicelib.destinations.base import own_arn, record_line
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import Verdict
from tests import factories
from tests.botocore_checks import assert_model_accepts
from tests.service_messages import QUOTE, answering, assert_reason_without_secrets, victim
from tests.strategies.messages import BODIES, PROPERTIES, body_of, decoded, valid_document

STREAM = kinesis.Settings("events", 10)


def make_event(number: int, endpoint: str = "ep-1", **fields: Any) -> Event:
    return factories.make_event(number, endpoint_id=endpoint, received_at="x", **fields)


class FakeKinesis:
    """PutRecords: each record accepted with a sequence number, or failed with the code
    `errors` gives its event id."""

    def __init__(self, errors: dict[str, str] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.errors = errors or {}
        self.error: Exception | None = None
        self.answer_count: int | None = None
        self.invalid_event: str | None = None  # botocore would refuse the request holding it

    def put_records(self, Records: list[dict[str, Any]], **target: str) -> Any:  # noqa: N803
        event_ids = [json.loads(r["Data"])["event_id"] for r in Records]
        if self.invalid_event in event_ids:
            raise ParamValidationError(report="Invalid length for parameter Records[0].Data")
        self.calls.append({"Records": Records, **target})
        if self.error is not None:
            raise self.error
        answers: list[dict[str, str]] = []
        for number, event_id in enumerate(event_ids):
            code = self.errors.get(event_id)
            if code:
                answers.append({"ErrorCode": code, "ErrorMessage": "account 1 shard 0 busy"})
            else:
                answers.append({"SequenceNumber": f"{number:056d}", "ShardId": "shardId-0"})
        count = len(answers) if self.answer_count is None else self.answer_count
        return {"FailedRecordCount": len(self.errors), "Records": answers[:count]}

    def sent_ids(self) -> list[str]:
        return [json.loads(r["Data"])["event_id"] for call in self.calls for r in call["Records"]]


def deliver(
    fake: FakeKinesis, events: list[Event], settings: kinesis.Settings = STREAM, **kw: Any
) -> list[Any]:
    return kinesis.KinesisDestination(fake, settings, **kw).deliver(events)  # type: ignore[arg-type]


def test_packs_500_records_a_call_each_the_shared_record_line() -> None:
    fake = FakeKinesis()
    events = [make_event(i, endpoint=f"ep-{i % 7}") for i in range(1201)]
    outcomes = deliver(fake, events)
    assert [len(call["Records"]) for call in fake.calls] == [500, 500, 201]
    assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}
    assert fake.sent_ids() == [f"e-{i}" for i in range(1201)]  # in the batch's order
    record = fake.calls[0]["Records"][3]
    assert record["Data"] == record_line(events[3])  # same bytes, newline included
    assert record["Data"].endswith(b"\n")
    assert fake.calls[0]["StreamName"] == "events"


def test_the_partition_key_is_the_endpoint_so_a_visitor_stays_on_one_shard() -> None:
    fake = FakeKinesis()
    deliver(fake, [make_event(0, "visitor-a"), make_event(1, "visitor-b"), make_event(2, "a/é")])
    keys = [r["PartitionKey"] for r in fake.calls[0]["Records"]]
    assert keys == ["visitor-a", "visitor-b", "a/é"]


def test_calls_stay_under_five_mib_as_sent() -> None:
    fake = FakeKinesis()
    wide = {f"k{j:02d}": "v" * 200 for j in range(40)}  # about 9 KB a record
    events = [make_event(i, attributes=wide) for i in range(500)]
    outcomes = deliver(fake, events)
    assert {o.verdict for o in outcomes} == {Verdict.DELIVERED}
    assert len(fake.calls) == 2  # 500 records are 6 MB base64-encoded
    assert sum(len(call["Records"]) for call in fake.calls) == 500
    for call in fake.calls:
        sent = sum(
            len(base64.b64encode(r["Data"])) + len(r["PartitionKey"]) for r in call["Records"]
        )
        assert sent < 5 * 1024 * 1024


def test_a_record_over_one_mib_with_its_key_is_rejected_and_the_rest_sent() -> None:
    fake = FakeKinesis()
    huge = make_event(0, attributes={f"k{i}": "v" * 200 for i in range(5300)})  # ≈ 1.1 MB
    outcomes = deliver(fake, [huge, make_event(1)])
    assert outcomes[0].verdict is Verdict.REJECTED
    assert "Kinesis allows 1048576" in outcomes[0].reason
    assert outcomes[1].verdict is Verdict.DELIVERED
    assert fake.sent_ids() == ["e-1"]


@pytest.mark.parametrize(
    "code",
    [
        "ProvisionedThroughputExceededException",
        "InternalFailure",
        "KMSThrottlingException",
        "KMSDisabledException",  # the stream's key, not the record: fixed by the operator
        "SomethingNewException",
    ],
)
def test_a_per_record_error_retries_that_record_alone(code: str) -> None:
    fake = FakeKinesis({"e-2": code})
    outcomes = deliver(fake, [make_event(i) for i in range(4)])
    assert [o.verdict for o in outcomes] == [
        Verdict.DELIVERED,
        Verdict.DELIVERED,
        Verdict.RETRY,
        Verdict.DELIVERED,
    ]
    assert outcomes[2].reason == f"PutRecords {code}"  # no account or shard from the message


def test_an_answer_without_a_sequence_number_is_not_taken_as_written() -> None:
    class Silent(FakeKinesis):
        def put_records(self, Records: list[dict[str, Any]], **target: str) -> Any:  # noqa: N803
            return {"FailedRecordCount": 0, "Records": [{} for _ in Records]}

    [outcome] = deliver(Silent(), [make_event(0)])
    assert outcome.verdict is Verdict.RETRY


def test_answers_for_other_records_retry_the_call() -> None:
    fake = FakeKinesis()
    fake.answer_count = 1
    outcomes = deliver(fake, [make_event(0), make_event(1)])
    assert [o.verdict for o in outcomes] == [Verdict.RETRY, Verdict.RETRY]


NOT_FOUND: Any = {
    "Error": {"Code": "ResourceNotFoundException"},
    "ResponseMetadata": {"HTTPStatusCode": 400},
}


@pytest.mark.parametrize(
    "error",
    [
        ClientError(NOT_FOUND, "PutRecords"),
        EndpointConnectionError(endpoint_url="http://x"),
    ],
)
def test_request_failures_retry_every_record_of_the_call(error: Exception) -> None:
    fake = FakeKinesis()
    fake.error = error
    outcomes = deliver(fake, [make_event(1), make_event(2)])
    assert {o.verdict for o in outcomes} == {Verdict.RETRY}
    assert outcomes[0].reason.startswith("PutRecords failed:")


def test_a_record_botocore_refuses_is_rejected_alone() -> None:
    fake = FakeKinesis()
    fake.invalid_event = "e-5"
    outcomes = deliver(fake, [make_event(i) for i in range(8)])
    assert [o.verdict for o in outcomes].count(Verdict.REJECTED) == 1
    assert outcomes[5].verdict is Verdict.REJECTED
    assert "kinesis could not build the request: ParamValidationError" in outcomes[5].reason
    assert sorted(fake.sent_ids()) == sorted(f"e-{i}" for i in range(8) if i != 5)


def test_starts_no_call_without_time_to_finish() -> None:
    fake = FakeKinesis()
    destination = kinesis.KinesisDestination(fake, STREAM, call_budget_ms=10_000)  # type: ignore[arg-type]
    [outcome] = destination.deliver([make_event(1)], time_left=lambda: 5_000)
    assert fake.calls == []
    assert outcome.reason == "out of time"


# Settings and IAM ---------------------------------------------------------------------------

ARN = "arn:aws:kinesis:eu-west-1:123456789012:stream/pixel-events"


def test_a_stream_name_or_arn_names_the_stream_in_the_request_and_the_policy() -> None:
    by_name = kinesis.Settings.from_env({"KINESIS_STREAM": " events "})
    assert by_name.stream == "events"
    assert by_name.target() == {"StreamName": "events"}
    [statement] = kinesis.Kinesis(by_name).iam_statements()
    assert statement["Action"] == ["kinesis:PutRecords"]
    assert statement["Resource"] == own_arn("kinesis", "stream/events")

    by_arn = kinesis.Settings.from_env({"KINESIS_STREAM": ARN})
    assert by_arn.target() == {"StreamARN": ARN}
    assert by_arn.stream_name == "pixel-events"
    assert kinesis.Kinesis(by_arn).iam_statements()[0]["Resource"] == ARN
    fake = FakeKinesis()
    deliver(fake, [make_event(0)], by_arn)
    assert fake.calls[0]["StreamARN"] == ARN
    assert "StreamName" not in fake.calls[0]


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "KINESIS_STREAM: is required"),
        ("has space", r"KINESIS_STREAM: must match \[a-zA-Z0-9_.-\]\+"),
        ("s" * 129, "KINESIS_STREAM: must be 1-128 characters"),
        ("team/events", "KINESIS_STREAM: must match"),
        ("arn:aws:kinesis:eu-west-1:1234:stream/x", "KINESIS_STREAM: must match arn:aws"),
        (
            "arn:aws:kinesis:eu-west-1:123456789012:stream/bad$name",
            "KINESIS_STREAM: the name in the ARN must match",
        ),
        ("arn:aws:sqs:eu-west-1:123456789012:queue-x", "KINESIS_STREAM: must match"),
    ],
)
def test_a_bad_stream_fails_at_start_naming_the_variable(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        registry.plugin("kinesis").parse({"KINESIS_STREAM": value})


def test_kinesis_is_a_known_destination() -> None:
    assert registry.parse_names("pinpoint,kinesis") == ("pinpoint", "kinesis")
    assert registry.plugin("kinesis").name == "kinesis"


# Any event the consumer can decode becomes a record botocore sends ----------------------


def assert_kinesis_accepts(event: Event) -> None:
    record = kinesis.build_record(event)
    assert len(record.data) + len(record.partition_key.encode()) <= kinesis.MAX_RECORD_BYTES
    assert_model_accepts(
        "kinesis",
        "PutRecords",
        {
            "StreamName": "s",
            "Records": [{"Data": record.data, "PartitionKey": record.partition_key}],
        },
    )


@PROPERTIES
@given(st.one_of(BODIES, valid_document().map(lambda document: body_of(document, False))))
def test_any_event_that_decodes_is_a_record_kinesis_accepts(body: str) -> None:
    event = decoded(body)
    if event is not None:
        assert_kinesis_accepts(event)


def test_a_reason_keeps_the_services_code_and_drops_its_message() -> None:
    """docs/operations.md#logs: a record's ErrorMessage may name the account and shard."""
    answer = {
        "FailedRecordCount": 1,
        "Records": [{"ErrorCode": "InternalFailure", "ErrorMessage": QUOTE}],
    }
    settings = kinesis.Settings(stream="s", timeout_seconds=1)
    [outcome] = kinesis.KinesisDestination(answering(answer), settings).deliver([victim()])
    assert_reason_without_secrets(outcome, "PutRecords InternalFailure")
