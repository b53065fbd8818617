"""`make policies` for a stage that delivers to Kinesis: PutRecords on its one stream."""

from __future__ import annotations

import json

from chalicelib.destinations.base import own_arn
from devtools.deploy.policies import consumer_policy, render
from devtools.queue_spec import stage_environment


def test_a_stage_with_kinesis_may_put_records_on_its_stream_only() -> None:
    environment = {**stage_environment("dev"), "DESTINATIONS": "kinesis,pinpoint"}
    policy = json.loads(render(consumer_policy(environment, "fn")))
    sids = [statement.get("Sid") for statement in policy["Statement"]]
    assert sids[-2:] == ["WriteKinesis", "RecordEvents"]  # the registry's (sorted) order
    [kinesis] = [s for s in policy["Statement"] if s.get("Sid") == "WriteKinesis"]
    assert kinesis == {
        "Sid": "WriteKinesis",
        "Effect": "Allow",
        "Action": ["kinesis:PutRecords"],
        "Resource": own_arn("kinesis", "stream/pixel-relay-dev-events"),
    }


def test_a_stream_given_by_arn_is_granted_by_that_arn() -> None:
    arn = "arn:aws:kinesis:eu-west-1:123456789012:stream/central-events"
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "DESTINATIONS": "kinesis",
        "KINESIS_STREAM": arn,
    }
    [kinesis] = [
        s for s in consumer_policy(environment, "fn")["Statement"] if s.get("Sid") == "WriteKinesis"
    ]
    assert kinesis["Resource"] == arn
