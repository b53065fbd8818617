"""Kinesis Data Streams through moto's server: hits in, records read back with
GetShardIterator/GetRecords.

moto does not enforce PutRecords' 500 records a call: the count of calls below is
pixel-relay's own packing.
"""

from __future__ import annotations

import json
import math
import uuid
from collections import Counter, defaultdict
from typing import Any

import boto3
import pytest

from chalicelib import runtime
from chalicelib.destinations.base import Visitor
from chalicelib.outcomes import Verdict
from tests.integration.harness import Pipeline, default_session

SHARDS = 4


class Stream:
    def __init__(self, moto_url: str) -> None:
        self.name = f"pixel-relay-{uuid.uuid4().hex[:8]}"
        self.client = boto3.client("kinesis", endpoint_url=moto_url)
        self.client.create_stream(StreamName=self.name, ShardCount=SHARDS)

    def records(self) -> list[dict[str, Any]]:
        """Every record on every shard, in each shard's order, with its shard."""
        found: list[dict[str, Any]] = []
        for shard in self.client.list_shards(StreamName=self.name)["Shards"]:
            iterator = self.client.get_shard_iterator(
                StreamName=self.name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
            )["ShardIterator"]
            while True:
                answer = self.client.get_records(ShardIterator=iterator, Limit=10_000)
                for record in answer["Records"]:
                    found.append(
                        {
                            "shard": shard["ShardId"],
                            "key": record["PartitionKey"],
                            "data": record["Data"],
                        }
                    )
                if not answer["Records"]:
                    break
                iterator = answer["NextShardIterator"]
        return found


@pytest.fixture
def stream(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Stream:
    created = Stream(moto_url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_KINESIS", moto_url)
    monkeypatch.setenv("KINESIS_STREAM", created.name)
    return created


def use(monkeypatch: pytest.MonkeyPatch, destinations: str) -> None:
    monkeypatch.setenv("DESTINATIONS", destinations)
    runtime.reset()


def send(pipeline: Pipeline, count: int, endpoints: int = 6) -> list[str]:
    ids = []
    for number in range(count):
        event_id = f"view-{number}"
        query = (
            f"event=view&endpoint_id=ep-{number % endpoints}&event_id={event_id}&evat_n={number}"
        )
        assert pipeline.hit(query).status == 200
        ids.append(event_id)
    return ids


def test_kinesis_gets_each_event_once_keyed_by_its_endpoint_500_to_a_call(
    pipeline: Pipeline, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, "kinesis")
    ids = send(pipeline, 600)
    calls: list[int] = []  # records in each PutRecords call, as botocore sends it

    def count(params: dict[str, Any], **_: Any) -> None:
        calls.append(len(params["Records"]))

    events = default_session().events  # where the app's clients come from
    events.register("before-parameter-build.kinesis.PutRecords", count)
    try:
        polls = pipeline.consumer(batch_size=600).drain()
    finally:
        events.unregister("before-parameter-build.kinesis.PutRecords", count)

    records = stream.records()
    lines = [json.loads(record["data"]) for record in records]
    assert Counter(line["event_id"] for line in lines) == Counter(ids)
    assert all(record["data"].endswith(b"\n") for record in records)
    # One visitor, one partition key, one shard.
    shards_of: defaultdict[str, set[str]] = defaultdict(set)
    for record, line in zip(records, lines, strict=True):
        assert record["key"] == line["endpoint_id"]
        shards_of[record["key"]].add(record["shard"])
    assert set(shards_of) == {f"ep-{n}" for n in range(6)}
    assert all(len(shards) == 1 for shards in shards_of.values())
    first = next(line for line in lines if line["event_id"] == "view-7")
    assert (first["event_type"], first["endpoint_id"], first["attributes"]) == (
        "view",
        "ep-1",
        {"n": "7"},
    )
    # 600 in one batch: 500 + 100. A loaded machine may hand the consumer smaller batches;
    # each still takes as few calls as the quota allows.
    # A slow gather may also receive a message twice (its visibility timeout ran out while
    # the batch filled): the copy is sent once, so a poll takes at most its share of calls.
    assert max(calls) <= 500
    assert len(calls) <= sum(math.ceil(poll.received / 500) for poll in polls), (calls, polls)
    assert pipeline.queued() == 0
    assert pipeline.dead_letters() == []


def test_when_pinpoint_fails_kinesis_still_gets_each_event_exactly_once(
    pipeline: Pipeline, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    use(monkeypatch, "pinpoint,kinesis")
    ids = send(pipeline, 30)
    pipeline.pinpoint.fail_next_requests(500, count=3)  # every attempt of Pinpoint's call
    consumer = pipeline.consumer(batch_size=100)

    consumer.poll()
    assert pipeline.delivered() == []
    consumer.drain()

    assert Counter(event_id for _, event_id in pipeline.delivered()) == Counter(ids)
    records = stream.records()
    assert Counter(json.loads(r["data"])["event_id"] for r in records) == Counter(ids)
    assert pipeline.dead_letters() == []


def test_a_missing_stream_loses_nothing(
    pipeline: Pipeline, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ResourceNotFoundException is the whole call's: every event goes back to the queue for
    the redrive policy, none is counted as delivered."""
    monkeypatch.setenv("KINESIS_STREAM", "no-such-stream")
    use(monkeypatch, "kinesis")
    send(pipeline, 3)
    consumer = pipeline.consumer(batch_size=100)
    first = consumer.poll()
    assert first.received == 3
    assert pipeline.queued() == 3


def test_forget_puts_one_erasure_record_on_the_shard_of_the_visitors_events(
    pipeline: Pipeline, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """docs/erasure.md: keyed as their events are, so a reader of that shard meets the
    erasure after every earlier event of the endpoint."""
    use(monkeypatch, "kinesis")
    send(pipeline, 12)
    pipeline.consumer().drain()
    [plugin] = runtime.destinations()
    destination = plugin.create()
    assert destination.announces_erasure
    visitor = Visitor(endpoint_id="ep-3", erased_at="2026-12-07T10:00:00.000Z")
    outcome = destination.forget(visitor)
    assert (outcome.verdict, outcome.reason) == (Verdict.DELIVERED, "erasure record sent")
    records = stream.records()
    [erasure] = [r for r in records if json.loads(r["data"])["event_type"] == "_erasure"]
    assert json.loads(erasure["data"]) == {
        "event_type": "_erasure",
        "endpoint_id": "ep-3",
        "user_id": None,
        "erased_at": "2026-12-07T10:00:00.000Z",
    }
    assert erasure["data"].endswith(b"\n")
    assert erasure["key"] == "ep-3"
    on_its_shard = [r for r in records if r["shard"] == erasure["shard"]]
    assert on_its_shard[-1] == erasure
    assert {json.loads(r["data"])["endpoint_id"] for r in records if r["key"] == "ep-3"} == {"ep-3"}
    # A user id is the key when the visitor has no endpoint id.
    destination.forget(Visitor(user_id="U1", erased_at="2026-12-07T10:00:00.000Z"))
    assert [r["key"] for r in stream.records() if b"U1" in r["data"]] == ["U1"]


def test_forget_on_a_missing_stream_is_a_retry_with_the_reason(
    pipeline: Pipeline, stream: Stream, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KINESIS_STREAM", "no-such-stream")
    use(monkeypatch, "kinesis")
    [plugin] = runtime.destinations()
    outcome = plugin.create().forget(Visitor(endpoint_id="ep-1"))
    assert outcome.verdict is Verdict.RETRY
    assert "ResourceNotFoundException" in outcome.reason
