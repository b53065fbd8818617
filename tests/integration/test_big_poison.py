"""Poison messages of any size are parked with their reason, through moto's SQS.

SQS takes at most 1 MiB a SendMessageBatch (every message's body and attributes together)
and a message of at most 1 MiB with its attributes. Dead letters sent ten to a call by
count failed with BatchRequestTooLong as soon as their bodies passed 1 MiB together, on
every receive, until the redrive policy moved them without a reason. Every batch call the
consumer and the pixel make is now sized by bytes as well as count, and a dead letter whose
body and reason cannot fit one message is made to fit (docs/message-format.md).
"""

from __future__ import annotations

import json
from collections import Counter

import boto3

from chalicelib.events import Event
from chalicelib.queue import SQS_MESSAGE_BYTES, EventQueue
from tests.factories import make_event
from tests.integration.harness import Pipeline


def send_hits(pipeline: Pipeline, count: int) -> list[str]:
    ids = [f"view-{number}" for number in range(count)]
    for event_id in ids:
        assert pipeline.hit(f"event=view&endpoint_id=ep-1&event_id={event_id}").status == 200
    return ids


def bad_body(number: int, size: int) -> str:
    """A JSON document that is not an event, `size` characters long."""
    head = f'{{"not":"an event","n":{number},"pad":"'
    return head + "x" * (size - len(head) - 2) + '"}'


def test_six_bad_bodies_of_200_kb_are_each_parked_with_their_reason(pipeline: Pipeline) -> None:
    bodies = [bad_body(n, 200_000) for n in range(6)]  # 1.2 MB together
    good = send_hits(pipeline, 3)
    for body in bodies:
        pipeline.send_raw(body)
    polls = pipeline.consumer(batch_size=10).drain()

    assert all(poll.error is None for poll in polls)
    assert Counter(event_id for _, event_id in pipeline.delivered()) == Counter(good)
    parked = pipeline.dead_letters()
    assert sorted(body for body, _ in parked) == sorted(bodies)  # kept whole: they fit
    for _, attributes in parked:
        assert attributes["rejection_reason"] == (
            "unsupported message version (null; this consumer reads 1)"
        )
        assert attributes["rejected_at_stage"] == "decode"
        assert "body_shortened" not in attributes
    assert pipeline.queued() == 0


def test_bodies_at_the_maximum_are_parked_with_their_reason_cut_to_fit(
    pipeline: Pipeline,
) -> None:
    """A body of 1 MiB leaves no room for the reason: it is cut, and says so. It is not an
    event (a valid one is under 100 KB), so nothing replayable is lost."""
    sizes = [SQS_MESSAGE_BYTES, SQS_MESSAGE_BYTES - 100, SQS_MESSAGE_BYTES - 2000]
    bodies = [bad_body(n, size) for n, size in enumerate(sizes)]
    for body in bodies:
        pipeline.send_raw(body)
    polls = pipeline.consumer(batch_size=10).drain()

    assert all(poll.error is None for poll in polls)
    parked = {
        json.loads(body[: body.index(',"pad"')] + "}")["n"]: (body, attributes)
        for body, attributes in pipeline.dead_letters()
    }
    assert sorted(parked) == [0, 1, 2]
    for number, (body, attributes) in parked.items():
        assert attributes["rejection_reason"].startswith("unsupported message version")
        assert attributes["rejected_at_stage"] == "decode"
        assert attributes["original_message_id"]
        size = len(body.encode()) + sum(
            len(name) + len("String") + len(value.encode()) for name, value in attributes.items()
        )
        assert size <= SQS_MESSAGE_BYTES
        if number == 2:  # 2,000 bytes of room: whole
            assert body == bodies[2]
            assert "body_shortened" not in attributes
        else:
            assert bodies[number].startswith(body)
            assert attributes["body_shortened"] == (
                f"cut to its first {len(body.encode()):,} of {sizes[number]:,} bytes"
            )
    assert pipeline.queued() == 0


def test_a_rejected_event_in_a_body_near_the_maximum_is_parked_as_the_event(
    pipeline: Pipeline,
) -> None:
    """A body that decodes (fields pixel-relay ignores padding it to near 1 MiB) and that a
    destination rejects: the letter carries the event re-encoded, which replays the same."""
    event = make_event(1, event_type="invalid", endpoint_id="ep-1")
    document = json.loads(event.to_message())
    document["ignored"] = "x" * (SQS_MESSAGE_BYTES - len(event.to_message()) - 100)
    padded = json.dumps(document, separators=(",", ":"))
    assert Event.from_message(padded) == event
    pipeline.send_raw(padded)
    pipeline.pinpoint.reject_events("invalid", status=400, message="Event is not valid")
    [poll] = pipeline.consumer().drain()

    assert poll.error is None
    [(body, attributes)] = pipeline.dead_letters()
    assert body == event.to_message()
    assert Event.from_message(body) == event
    assert attributes["rejection_reason"] == "PutEvents event failed: 400"
    assert attributes["rejected_at_stage"] == "pinpoint"
    assert attributes["body_shortened"] == (
        f"the event re-encoded, from a body of {len(padded.encode()):,} bytes"
    )


def test_the_pixels_batch_send_is_sized_by_bytes_too(pipeline: Pipeline) -> None:
    """Beacon lines make small messages, but send_batch takes any events: six of ~200 KB
    (1.2 MB together) go in calls SQS accepts."""
    events = [make_event(n, attributes={"a": "v" * 200_000}) for n in range(6)]
    client = boto3.client("sqs", endpoint_url=pipeline.sqs.meta.endpoint_url)
    queue = EventQueue(client, pipeline.events_url.rsplit("/", 1)[-1])
    result = queue.send_batch(events)
    assert result.failed == ()
    assert pipeline.queued() == 6
