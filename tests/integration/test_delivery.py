"""The consumer over real HTTP: SQS batches from moto into the Pinpoint stand-in.

Each test runs the pixel for real, then lets the local event source mapping hand batches to
`deliver` the way Lambda would, and checks what reached Pinpoint, the queue and the
dead-letter queue: nothing accepted is lost, nothing delivered is delivered twice.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest

from chalicelib import runtime
from tests.integration.harness import MAX_RECEIVE_COUNT, Pipeline


def send_hits(pipeline: Pipeline, count: int, event: str = "view", start: int = 0) -> list[str]:
    """Send hits with client event ids; return the ids."""
    ids = []
    for number in range(start, start + count):
        event_id = f"{event}-{number}"
        query = f"event={event}&endpoint_id=ep-{number % 7}&event_id={event_id}&evat_n={number}"
        assert pipeline.hit(query).status == 200
        ids.append(event_id)
    return ids


def delivered_ids(pipeline: Pipeline) -> Counter[str]:
    return Counter(event_id for _, event_id in pipeline.delivered())


def test_250_events_arrive_in_3_batches_of_one_call_each(pipeline: Pipeline) -> None:
    ids = send_hits(pipeline, 250)
    polls = pipeline.consumer(batch_size=100).drain()

    assert [p.received for p in polls] == [100, 100, 50]
    assert all(p.error is None for p in polls)
    assert len(pipeline.pinpoint.requests) == 3
    assert delivered_ids(pipeline) == Counter(ids)
    assert pipeline.queued() == 0
    assert pipeline.dead_letters() == []


def test_delivered_event_has_pinpoint_shape(pipeline: Pipeline) -> None:
    query = (
        "event=purchase&endpoint_id=ep-9&event_id=order-1&timestamp=2026-11-28T00:00:00Z"
        "&evat_product=shoes&evmt_price=49.90&session_id=s-1"
    )
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MAX_EVENT_AGE_SECONDS", str(30 * 86_400))
        runtime.reset()
        assert pipeline.hit(query).status == 200
    pipeline.consumer().drain()
    [accepted] = pipeline.pinpoint.accepted_events
    assert (accepted.endpoint_id, accepted.event_id) == ("ep-9", "order-1")
    assert accepted.event == {
        "EventType": "purchase",
        "Timestamp": "2026-11-28T00:00:00.000Z",
        "Attributes": {"product": "shoes"},
        "Metrics": {"price": 49.9},
        "Session": {"Id": "s-1", "StartTimestamp": "2026-11-28T00:00:00.000Z"},
    }
    assert accepted.endpoint == {}


def test_mixed_results_deliver_park_and_retry_each_event_once(pipeline: Pipeline) -> None:
    good = send_hits(pipeline, 5, "view")
    bad = send_hits(pipeline, 2, "invalid", start=100)
    throttled = send_hits(pipeline, 3, "busy", start=200)
    pipeline.pinpoint.reject_events("invalid", status=400, message="Event is not valid")
    pipeline.pinpoint.reject_events("busy", status=429, message="Slow down")
    consumer = pipeline.consumer()

    first = consumer.poll()
    assert first.received == 10
    assert pipeline.queued() == 3  # the handler deleted the finished seven itself
    assert first.error == "BatchIncompleteError: 3 of 10 messages will be retried; " + (
        "the others are finished and deleted"
    )
    pipeline.pinpoint.clear_rules()
    consumer.drain()

    assert delivered_ids(pipeline) == Counter(good + throttled)
    parked = pipeline.dead_letters()
    assert sorted(json.loads(body)["event_id"] for body, _ in parked) == sorted(bad)
    # The status, never Pinpoint's message ("Event is not valid" here): it may quote an id.
    assert {attributes["rejection_reason"] for _, attributes in parked} == {
        "PutEvents event failed: 400"
    }
    assert {attributes["rejected_at_stage"] for _, attributes in parked} == {"pinpoint"}
    assert pipeline.queued() == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("not json at all", "body is not JSON"),
        ('{"version": 2, "event_type": "x"}', "unsupported message version 2"),
        ('{"version": 1, "event_type": "x"}', "event_id must be a non-empty string"),
    ],
)
def test_poison_message_is_parked_without_failing_the_batch(
    pipeline: Pipeline, body: str, reason: str
) -> None:
    ids = send_hits(pipeline, 3)
    pipeline.send_raw(body)
    [poll] = pipeline.consumer().drain()

    assert poll.error is None
    assert delivered_ids(pipeline) == Counter(ids)
    [(parked_body, attributes)] = pipeline.dead_letters()
    assert parked_body == body
    assert attributes["rejection_reason"] == reason
    assert attributes["rejected_at_stage"] == "decode"
    assert attributes["original_message_id"]


@pytest.mark.parametrize("status", [429, 500])
def test_request_level_throttle_or_error_is_retried_then_delivered_once(
    pipeline: Pipeline, status: int
) -> None:
    ids = send_hits(pipeline, 20)
    pipeline.pinpoint.fail_next_requests(status, count=3)  # every attempt of the first call
    polls = pipeline.consumer().drain()

    assert polls[0].error is not None
    assert delivered_ids(pipeline) == Counter(ids)
    assert pipeline.queued() == 0


def test_timeout_is_retried_with_the_ids_assigned_at_the_pixel(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DELIVERY_TIMEOUT_SECONDS", "1")
    runtime.reset()
    for number in range(4):
        assert pipeline.hit(f"event=view&endpoint_id=ep-{number}").status == 200
    queued = pipeline.sqs.receive_message(
        QueueUrl=pipeline.events_url, MaxNumberOfMessages=10, VisibilityTimeout=0
    )["Messages"]
    assigned = {json.loads(m["Body"])["event_id"] for m in queued}
    assert len(assigned) == 4

    pipeline.pinpoint.delay_next_requests(1.5, count=3)  # every attempt of the first call
    polls = pipeline.consumer().drain()

    assert polls[0].error is not None
    # Pinpoint may have recorded requests whose answers timed out: the retry repeats the
    # very ids the pixel assigned, so a consumer downstream can drop the copies.
    delivered = delivered_ids(pipeline)
    assert set(delivered) == assigned
    assert all(count >= 2 for count in delivered.values())
    assert pipeline.queued() == 0


def test_request_level_4xx_is_retried_until_the_queue_redrives_it(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = send_hits(pipeline, 2)
    monkeypatch.setenv("PINPOINT_APPLICATION_ID", "wrong-application")
    runtime.reset()
    consumer = pipeline.consumer()
    for _ in range(MAX_RECEIVE_COUNT):
        assert consumer.poll().error is not None
    assert consumer.poll().received == 0  # moved by the redrive policy

    parked = pipeline.dead_letters()
    assert sorted(json.loads(body)["event_id"] for body, _ in parked) == sorted(ids)
    assert pipeline.delivered() == []


def test_rejection_is_retried_when_the_dead_letter_queue_is_unreachable(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    send_hits(pipeline, 1, "invalid")
    pipeline.pinpoint.reject_events("invalid", status=400)
    monkeypatch.setenv("DEAD_LETTER_QUEUE", "missing-dead-letter-queue")
    runtime.reset()
    poll = pipeline.consumer().poll()
    assert (poll.received, poll.left) == (1, 1)
    assert pipeline.queued() == 1


# Both event source mapping settings ---------------------------------------------------------


def mixed_batch(pipeline: Pipeline) -> tuple[list[str], list[str]]:
    good = send_hits(pipeline, 6, "view")
    throttled = send_hits(pipeline, 4, "busy", start=50)
    pipeline.pinpoint.reject_events("busy", status=500, message="Internal")
    return good, throttled


@pytest.mark.parametrize("mapping_reports_failures", [False, True])
def test_default_mode_is_safe_with_either_mapping_setting(
    pipeline: Pipeline, mapping_reports_failures: bool
) -> None:
    good, throttled = mixed_batch(pipeline)
    consumer = pipeline.consumer(report_batch_item_failures=mapping_reports_failures)
    first = consumer.poll()
    assert first.error is not None  # Lambda is told to keep the batch...
    assert pipeline.queued() == 4  # ...but the delivered six were deleted by the consumer
    pipeline.pinpoint.clear_rules()
    consumer.drain()
    assert delivered_ids(pipeline) == Counter(good + throttled)


def test_report_mode_with_the_mapping_setting_returns_partial_failures(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REPORT_BATCH_ITEM_FAILURES", "true")
    runtime.reset()
    good, throttled = mixed_batch(pipeline)
    consumer = pipeline.consumer(report_batch_item_failures=True)
    first = consumer.poll()
    assert first.error is None
    assert (first.deleted, first.left) == (6, 4)
    pipeline.pinpoint.clear_rules()
    consumer.drain()
    assert delivered_ids(pipeline) == Counter(good + throttled)


def test_report_mode_without_the_mapping_setting_would_lose_events(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Why REPORT_BATCH_ITEM_FAILURES defaults to false: if it is set while the mapping
    lacks ReportBatchItemFailures, Lambda deletes the reported failures with the rest."""
    monkeypatch.setenv("REPORT_BATCH_ITEM_FAILURES", "true")
    runtime.reset()
    good, _ = mixed_batch(pipeline)
    consumer = pipeline.consumer(report_batch_item_failures=False)
    consumer.poll()
    pipeline.pinpoint.clear_rules()
    consumer.drain()
    assert delivered_ids(pipeline) == Counter(good)  # the four retries are gone
    assert pipeline.queued() == 0


def test_batch_metrics_count_calls_and_outcomes(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    send_hits(pipeline, 120)
    capsys.readouterr()
    pipeline.consumer(batch_size=120).drain()
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    [batch] = [doc for doc in documents if "EventsDelivered" in doc]
    assert batch["EventsDelivered"] in (120.0, [120.0])
    assert batch["PutEventsCalls"] in ([1.0, 1.0], 2.0, [2.0])
