"""Firehose and EventBridge through moto's server, and fan-out with one destination failing.

moto enforces neither Firehose's 500 records a call nor EventBridge's 10 entries: the
counts of calls below show pixel-relay's own packing.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

from chalicelib import runtime
from chalicelib.destinations.base import Visitor
from chalicelib.events import EventRecord
from chalicelib.outcomes import Verdict
from tests.integration.harness import Pipeline, default_session


@dataclass
class Targets:
    s3: Any
    sqs: Any
    bucket: str
    bus_queue_url: str

    def firehose_lines(self) -> list[dict[str, Any]]:
        objects = self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", [])
        lines: list[dict[str, Any]] = []
        for item in objects:
            body = self.s3.get_object(Bucket=self.bucket, Key=item["Key"])["Body"].read()
            lines.extend(json.loads(line) for line in body.decode().splitlines())
        return lines

    def firehose_objects(self) -> int:
        return len(self.s3.list_objects_v2(Bucket=self.bucket).get("Contents", []))

    def bus_events(self) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.bus_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                found.append(json.loads(message["Body"]))
                self.sqs.delete_message(
                    QueueUrl=self.bus_queue_url, ReceiptHandle=message["ReceiptHandle"]
                )


@pytest.fixture
def targets(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Targets:
    suffix = uuid.uuid4().hex[:8]
    s3 = boto3.client("s3", endpoint_url=moto_url)
    bucket = f"events-{suffix}"
    s3.create_bucket(Bucket=bucket)
    stream = f"pixel-relay-{suffix}"
    boto3.client("firehose", endpoint_url=moto_url).create_delivery_stream(
        DeliveryStreamName=stream,
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "RoleARN": "arn:aws:iam::123456789012:role/firehose",
        },
    )
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    queue_url = sqs.create_queue(QueueName=f"bus-target-{suffix}")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events = boto3.client("events", endpoint_url=moto_url)
    bus = f"bus-{suffix}"
    events.create_event_bus(Name=bus)
    events.put_rule(
        Name=f"all-{suffix}", EventBusName=bus, EventPattern=json.dumps({"source": ["pixel-relay"]})
    )
    events.put_targets(
        Rule=f"all-{suffix}", EventBusName=bus, Targets=[{"Id": "queue", "Arn": queue_arn}]
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_FIREHOSE", moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_EVENTBRIDGE", moto_url)
    monkeypatch.setenv("FIREHOSE_STREAM", stream)
    monkeypatch.setenv("EVENTBRIDGE_BUS", bus)
    return Targets(s3, sqs, bucket, queue_url)


def use(monkeypatch: pytest.MonkeyPatch, destinations: str) -> None:
    monkeypatch.setenv("DESTINATIONS", destinations)
    runtime.reset()


def send(pipeline: Pipeline, count: int, event: str = "view") -> list[str]:
    ids = []
    for number in range(count):
        event_id = f"{event}-{number}"
        query = f"event={event}&endpoint_id=ep-{number % 5}&event_id={event_id}&evat_n={number}"
        assert pipeline.hit(query).status == 200
        ids.append(event_id)
    return ids


def test_firehose_gets_newline_json_in_calls_of_at_most_500_records(
    pipeline: Pipeline, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, "firehose")
    ids = send(pipeline, 600)
    calls: list[int] = []  # records per PutRecordBatch, as the consumer's client sends them
    events = default_session().events  # where the app's clients come from
    event_name = "provide-client-params.firehose.PutRecordBatch"

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Records"]))

    events.register(event_name, count)
    try:
        polls = pipeline.consumer(batch_size=600).drain()
    finally:
        events.unregister(event_name, count)

    lines = targets.firehose_lines()
    assert sorted(line["event_id"] for line in lines) == sorted(ids)
    assert all(poll.error is None for poll in polls)
    # A batch of 600 takes 500 + 100. A loaded machine may hand the consumer smaller
    # batches; each still takes as few calls as the quota allows.
    # A slow gather may also receive a message twice (its visibility timeout ran out while
    # the batch filled): the copy is sent once, so a poll takes at most its share of calls.
    assert max(calls) <= 500
    assert len(calls) <= sum(math.ceil(poll.received / 500) for poll in polls), (calls, polls)
    first = next(line for line in lines if line["event_id"] == "view-7")
    assert first["event_type"] == "view"
    assert first["endpoint_id"] == "ep-2"
    assert first["attributes"] == {"n": "7"}
    # Python 3.11 counts NotRequired keys as required under `from __future__ import
    # annotations`; the hit carried neither optional field.
    assert set(first) == EventRecord.__required_keys__ - {"client_timestamp", "consent"}
    assert pipeline.queued() == 0


def test_eventbridge_entries_route_on_event_type_ten_to_a_call(
    pipeline: Pipeline,
    targets: Targets,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    use(monkeypatch, "eventbridge")
    ids = send(pipeline, 25, "purchase")
    capsys.readouterr()
    pipeline.consumer(batch_size=100).drain()

    events = targets.bus_events()
    assert sorted(e["detail"]["event_id"] for e in events) == sorted(ids)
    assert {(e["source"], e["detail-type"]) for e in events} == {("pixel-relay", "purchase")}
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    calls = [doc["EventBridgeCalls"] for doc in documents if "EventBridgeCalls" in doc]
    assert sum(sum(c) if isinstance(c, list) else c for c in calls) == 3


def test_fan_out_retries_only_the_failed_destination(
    pipeline: Pipeline, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, "pinpoint,firehose")
    ids = send(pipeline, 30)
    pipeline.pinpoint.fail_next_requests(500, count=3)  # every attempt of Pinpoint's call
    consumer = pipeline.consumer(batch_size=100)

    first = consumer.poll()
    assert first.error is None  # nothing to retry as is: the copies went back to the queue
    assert sorted(line["event_id"] for line in targets.firehose_lines()) == sorted(ids)
    assert pipeline.delivered() == []

    consumer.drain()
    assert Counter(event_id for _, event_id in pipeline.delivered()) == Counter(ids)
    assert Counter(line["event_id"] for line in targets.firehose_lines()) == Counter(ids)
    assert pipeline.queued() == 0
    assert pipeline.dead_letters() == []


def test_a_rejection_at_one_destination_is_parked_for_it_alone(
    pipeline: Pipeline, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, "pinpoint,firehose")
    [event_id] = send(pipeline, 1, "invalid")
    pipeline.pinpoint.reject_events("invalid", status=400, message="Event is not valid")
    pipeline.consumer().drain()

    assert [line["event_id"] for line in targets.firehose_lines()] == [event_id]
    [(body, attributes)] = pipeline.dead_letters()
    assert attributes["rejected_at_stage"] == "pinpoint"
    assert json.loads(body)["destinations"] == ["pinpoint"]  # a replay goes to Pinpoint only


def test_one_poisoned_field_never_fails_the_batch_at_any_destination(
    pipeline: Pipeline, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The issue's case: a timestamp the pixel would never write, with eventbridge among the
    destinations. Whether decode parks it or EventBridge's builder refuses it, every other
    message reaches every destination exactly once, and the poison is parked with a reason."""
    use(monkeypatch, "pinpoint,firehose,eventbridge")
    ids = send(pipeline, 20)
    [sample] = pipeline.sqs.receive_message(QueueUrl=pipeline.events_url, VisibilityTimeout=0)[
        "Messages"
    ]
    poison = json.loads(sample["Body"])
    poison.update(event_id="poison-1", timestamp="2026-11-30 10:00:00 UTC")
    pipeline.send_raw(json.dumps(poison))
    polls = pipeline.consumer(batch_size=100).drain()

    assert polls[0].error is None  # nothing failed the batch, nothing retried as is
    others = Counter(ids)
    assert Counter(e for _, e in pipeline.delivered() if e != "poison-1") == others
    assert (
        Counter(x["event_id"] for x in targets.firehose_lines() if x["event_id"] != "poison-1")
        == others
    )
    bus = [e["detail"]["event_id"] for e in targets.bus_events()]
    assert Counter(bus) == others  # EventBridge never got the poison
    # The poison reached each destination at most once, and is parked with its reason.
    assert [e for _, e in pipeline.delivered()].count("poison-1") <= 1
    assert [x["event_id"] for x in targets.firehose_lines()].count("poison-1") <= 1
    parked = pipeline.dead_letters()
    assert parked
    assert all(json.loads(body)["event_id"] == "poison-1" for body, _ in parked)
    reasons = {(a["rejected_at_stage"], a["rejection_reason"]) for _, a in parked}
    assert ("eventbridge", "eventbridge could not build the entry: ValueError") in reasons or any(
        stage == "decode" and "timestamp" in reason for stage, reason in reasons
    )
    assert all("2026-11-30" not in reason for _, reason in reasons)
    assert pipeline.queued() == 0


ERASED_AT = "2026-12-07T10:00:00.000Z"


def test_forget_sends_firehose_one_erasure_line_among_the_events(
    pipeline: Pipeline, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, "firehose")
    send(pipeline, 5)
    pipeline.consumer().drain()
    [plugin] = runtime.destinations()
    outcome = plugin.create().forget(Visitor(endpoint_id="ep-2", erased_at=ERASED_AT))
    assert (outcome.verdict, outcome.reason) == (Verdict.DELIVERED, "erasure record sent")
    lines = targets.firehose_lines()
    assert len(lines) == 6
    [erasure] = [line for line in lines if line["event_type"] == "_erasure"]
    assert erasure == {
        "event_type": "_erasure",
        "endpoint_id": "ep-2",
        "user_id": None,
        "erased_at": ERASED_AT,
    }
    # The same columns as an event's: one table over the bucket reads both.
    assert set(erasure) <= set(EventRecord.__annotations__) | {"erased_at"}


def test_forget_puts_an_erasure_entry_on_the_bus_that_event_rules_never_match(
    pipeline: Pipeline, targets: Targets, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, "eventbridge")
    [plugin] = runtime.destinations()
    outcome = plugin.create().forget(Visitor(user_id="U1", erased_at=ERASED_AT))
    assert outcome.verdict is Verdict.DELIVERED
    [entry] = targets.bus_events()  # the fixture's rule: every entry of source pixel-relay
    assert entry["source"] == "pixel-relay"
    assert entry["detail-type"] == "_erasure"  # no event type may start with _
    assert entry["time"] == "2026-12-07T10:00:00Z"
    assert entry["detail"] == {
        "event_type": "_erasure",
        "endpoint_id": None,
        "user_id": "U1",
        "erased_at": ERASED_AT,
    }
