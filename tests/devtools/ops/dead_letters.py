"""Dead letters for the dlq tests: the dev stage's queue names, event messages parked as the
consumer parks them (or as the redrive policy moves them), and reading a queue back. The
`queues` fixture (conftest.py) creates the two queues on moto."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NamedTuple

from chalicelib.hits import HitPolicy, parse_hit
from devtools.queue_spec import QueueSpec

STAGE = "dev"
SPEC = QueueSpec.for_stage(STAGE)


class Queues(NamedTuple):
    """The stage's two queue URLs (a tuple, so `events, dead_letter = queues` reads them)."""

    events: str
    dead_letter: str


def event_body(event_type: str, number: int) -> str:
    hit = parse_hit(
        {"event": [event_type], "endpoint_id": [f"ep-{number}"], "event_id": [f"id-{number}"]},
        HitPolicy(),
        datetime.now(UTC),
    )
    return hit.event.to_message()


def park(sqs: Any, url: str, body: str, reason: str | None, stage: str = "pinpoint") -> None:
    """As the consumer parks a message (or, without a reason, as the redrive policy moves it)."""
    attributes = (
        {}
        if reason is None
        else {
            "rejection_reason": {"DataType": "String", "StringValue": reason},
            "rejected_at_stage": {"DataType": "String", "StringValue": stage},
            "original_message_id": {"DataType": "String", "StringValue": "m-original"},
        }
    )
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)


def fill(sqs: Any, dead_letter: str) -> list[str]:
    """12 purchase rejected by Pinpoint, 5 signup moved by redrive, 2 profile parks, 1 bad."""
    bodies = []
    for n in range(12):
        bodies.append(event_body("purchase", n))
        park(sqs, dead_letter, bodies[-1], "400 Event is not valid")
    for n in range(12, 17):
        bodies.append(event_body("signup", n))
        park(sqs, dead_letter, bodies[-1], None)
    for n in range(17, 19):
        bodies.append(event_body("purchase", n))
        park(sqs, dead_letter, bodies[-1], "429 Too many requests", stage="pinpoint:profile")
    bodies.append("not json {")
    park(sqs, dead_letter, bodies[-1], "body is not JSON", stage="decode")
    return bodies


def everything_on(sqs: Any, url: str) -> list[str]:
    """Every body on a queue (received and deleted)."""
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def approximate(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())
