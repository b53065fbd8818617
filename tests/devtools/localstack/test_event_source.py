"""The local SQS event source mapping against moto's server: batching, the event Lambda hands
over, what is deleted or kept after each kind of answer, redrive, and the `run` loop.

Times are asserted only as loose upper bounds: a loaded machine is slow, never fast.
"""

from __future__ import annotations

import base64
import hashlib
import json
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from moto.server import ThreadedMotoServer

from devtools.localstack.event_source import MAX_PAYLOAD_BYTES, LocalEventSourceMapping, PollResult

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


@pytest.fixture(scope="module")
def sqs() -> Iterator[SQSClient]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield boto3.client("sqs", endpoint_url=f"http://{host}:{port}", region_name="us-east-1")
    server.stop()


@dataclass(frozen=True)
class Queue:
    sqs: SQSClient
    url: str
    arn: str
    dead_letter_url: str

    def send(self, count: int, prefix: str = "m", body_bytes: int = 0) -> list[str]:
        """Send `count` messages; returns their bodies (padded to `body_bytes` if given)."""
        bodies = [f"{prefix}-{n}".ljust(body_bytes, ".") for n in range(count)]
        if body_bytes > 100_000:  # a batch request is capped at 1 MiB
            for body in bodies:
                self.sqs.send_message(QueueUrl=self.url, MessageBody=body)
            return bodies
        for start in range(0, count, 10):
            chunk = bodies[start : start + 10]
            answer = self.sqs.send_message_batch(
                QueueUrl=self.url,
                Entries=[{"Id": str(i), "MessageBody": body} for i, body in enumerate(chunk)],
            )
            assert not answer.get("Failed")
        return bodies

    def bodies(self, url: str | None = None) -> list[str]:
        """Every visible message's body, received once (they come back after the timeout)."""
        found: list[str] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url or self.url, MaxNumberOfMessages=10, VisibilityTimeout=30
            ).get("Messages", [])
            if not messages:
                return sorted(found)
            found.extend(m["Body"] for m in messages)

    def in_flight(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessagesNotVisible"])


def make_queue(sqs: SQSClient, visibility_timeout: int = 30, max_receive_count: int = 5) -> Queue:
    suffix = uuid.uuid4().hex[:8]
    dead_letter_url = sqs.create_queue(QueueName=f"dlq-{suffix}")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    redrive = {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": max_receive_count}
    url = sqs.create_queue(
        QueueName=f"events-{suffix}",
        Attributes={
            "VisibilityTimeout": str(visibility_timeout),
            "RedrivePolicy": json.dumps(redrive),
        },
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return Queue(sqs, url, arn, dead_letter_url)


@pytest.fixture
def queue(sqs: SQSClient) -> Queue:
    return make_queue(sqs)


class Recorder:
    """A handler that keeps every event and answers what it is told to."""

    def __init__(self, answer: Any = None) -> None:
        self.events: list[dict[str, Any]] = []
        self.answer = answer

    def __call__(self, event: dict[str, Any]) -> Any:
        self.events.append(event)
        return self.answer(event) if callable(self.answer) else self.answer

    @property
    def batch_sizes(self) -> list[int]:
        return [len(event["Records"]) for event in self.events]


def always_raise(event: dict[str, Any]) -> Any:
    raise RuntimeError("downstream is down")


# Batching -------------------------------------------------------------------------------------


def test_batches_form_by_size(queue: Queue) -> None:
    bodies = queue.send(25)
    handler = Recorder()
    polls = LocalEventSourceMapping(queue.sqs, queue.url, handler, batch_size=10).drain()

    assert [p.received for p in polls] == [10, 10, 5]
    assert all((p.deleted, p.left, p.error) == (p.received, 0, None) for p in polls)
    seen = sorted(r["body"] for event in handler.events for r in event["Records"])
    assert seen == sorted(bodies)
    assert queue.bodies() == []


def test_window_gathers_messages_sent_while_it_is_open(queue: Queue) -> None:
    handler = Recorder()
    mapping = LocalEventSourceMapping(
        queue.sqs, queue.url, handler, batch_size=10, batching_window_seconds=2
    )
    queue.send(1, "first")

    def send_later() -> None:
        for n in range(3):
            time.sleep(0.4)
            queue.send(1, f"late{n}")

    sender = threading.Thread(target=send_later)
    started = time.monotonic()
    sender.start()
    result = mapping.poll(wait_seconds=1)
    elapsed = time.monotonic() - started
    sender.join()

    assert result.received == 4  # the batch is not full: it waited out the window
    assert handler.batch_sizes == [4]
    assert elapsed < 2 + 3  # about the window, never a long poll's 20 s
    assert mapping.poll().received == 0


def test_window_closes_early_when_the_batch_is_full(queue: Queue) -> None:
    queue.send(12)
    mapping = LocalEventSourceMapping(
        queue.sqs, queue.url, Recorder(), batch_size=10, batching_window_seconds=60
    )
    started = time.monotonic()
    assert mapping.poll().received == 10
    assert time.monotonic() - started < 10


def test_without_window_a_poll_takes_only_what_is_there(queue: Queue) -> None:
    queue.send(3)
    mapping = LocalEventSourceMapping(queue.sqs, queue.url, Recorder(), batch_size=10)
    started = time.monotonic()
    assert mapping.poll().received == 3
    assert mapping.poll().received == 0
    assert time.monotonic() - started < 5


def test_a_poll_with_nothing_to_receive_ends_after_its_wait(queue: Queue) -> None:
    handler = Recorder()
    mapping = LocalEventSourceMapping(queue.sqs, queue.url, handler, batching_window_seconds=5)
    started = time.monotonic()
    assert mapping.poll(wait_seconds=1) == PollResult(0, 0, 0)
    assert time.monotonic() - started < 4  # the window only starts with a first message
    assert handler.events == []


def test_batches_are_cut_at_lambdas_6_mb_payload(queue: Queue) -> None:
    # 30 bodies of 240 kB are 7.2 MB: one event cannot hold them all.
    bodies = queue.send(30, body_bytes=240_000)
    sizes: list[int] = []
    receive_counts: list[str] = []

    def handler(event: dict[str, Any]) -> None:
        sizes.append(len(json.dumps(event, separators=(",", ":")).encode()))
        receive_counts.extend(r["attributes"]["ApproximateReceiveCount"] for r in event["Records"])

    mapping = LocalEventSourceMapping(queue.sqs, queue.url, handler, batch_size=100)
    polls = mapping.drain()

    assert len(polls) == 2
    assert sum(p.received for p in polls) == len(bodies)
    assert all(size <= MAX_PAYLOAD_BYTES for size in sizes)
    assert sizes[0] > MAX_PAYLOAD_BYTES - 300_000  # cut only when the next would not fit
    # What did not fit was held for the next batch, not received a second time.
    assert set(receive_counts) == {"1"}
    assert queue.bodies() == []


def test_a_smaller_payload_limit_cuts_smaller_batches(queue: Queue) -> None:
    queue.send(7, body_bytes=1000)
    handler = Recorder()
    mapping = LocalEventSourceMapping(
        queue.sqs, queue.url, handler, batch_size=10, max_payload_bytes=3 * 1800
    )
    polls = mapping.drain()
    assert handler.batch_sizes == [p.received for p in polls]
    assert sum(handler.batch_sizes) == 7
    assert max(handler.batch_sizes) < 7


# The event ------------------------------------------------------------------------------------


def test_records_have_lambdas_shape(queue: Queue) -> None:
    sent = queue.sqs.send_message(
        QueueUrl=queue.url,
        MessageBody='{"hello": "world"}',
        MessageAttributes={
            "kind": {"DataType": "String", "StringValue": "pixel"},
            "count": {"DataType": "Number", "StringValue": "3"},
            "raw": {"DataType": "Binary", "BinaryValue": b"\x00\xff"},
        },
    )
    handler = Recorder()
    LocalEventSourceMapping(queue.sqs, queue.url, handler).poll()

    [event] = handler.events
    [record] = event["Records"]
    assert record["messageId"] == sent["MessageId"]
    assert record["receiptHandle"]
    assert record["body"] == '{"hello": "world"}'
    assert set(record["attributes"]) >= {
        "ApproximateReceiveCount",
        "SentTimestamp",
        "SenderId",
        "ApproximateFirstReceiveTimestamp",
    }
    assert record["attributes"]["ApproximateReceiveCount"] == "1"
    assert record["attributes"]["SentTimestamp"].isdigit()
    assert record["messageAttributes"] == {
        "kind": {
            "stringValue": "pixel",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "String",
        },
        "count": {
            "stringValue": "3",
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Number",
        },
        "raw": {
            "binaryValue": base64.b64encode(b"\x00\xff").decode(),
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": "Binary",
        },
    }
    assert record["md5OfBody"] == hashlib.md5(b'{"hello": "world"}').hexdigest()
    assert record["eventSource"] == "aws:sqs"
    assert record["eventSourceARN"] == queue.arn
    assert record["awsRegion"] == "us-east-1"
    json.dumps(event)  # what Lambda hands over is plain JSON


# Answers and failures -------------------------------------------------------------------------


def fail_bodies(*bodies: str) -> Any:
    def answer(event: dict[str, Any]) -> dict[str, Any]:
        failed = [r["messageId"] for r in event["Records"] if r["body"] in bodies]
        return {"batchItemFailures": [{"itemIdentifier": i} for i in failed]}

    return answer


def test_partial_failures_stay_when_the_mapping_reports_them(queue: Queue) -> None:
    bodies = queue.send(5)
    mapping = LocalEventSourceMapping(
        queue.sqs,
        queue.url,
        Recorder(fail_bodies(bodies[1], bodies[3])),
        report_batch_item_failures=True,
    )
    assert mapping.poll() == PollResult(received=5, deleted=3, left=2)
    assert queue.bodies() == sorted([bodies[1], bodies[3]])


def test_partial_failures_are_deleted_without_the_mapping_setting(queue: Queue) -> None:
    bodies = queue.send(5)
    mapping = LocalEventSourceMapping(
        queue.sqs, queue.url, Recorder(fail_bodies(bodies[1], bodies[3]))
    )
    assert mapping.poll() == PollResult(received=5, deleted=5, left=0)
    assert queue.bodies() == []  # Lambda ignored the answer: the failures are lost


@pytest.mark.parametrize(
    "answer",
    [
        None,
        {},
        {"batchItemFailures": []},
        {"batchItemFailures": None},
        {"statusCode": 200},
    ],
    ids=["null", "empty", "empty-list", "null-list", "no-list"],
)
def test_answers_lambda_counts_as_complete_success(queue: Queue, answer: Any) -> None:
    queue.send(3)
    mapping = LocalEventSourceMapping(
        queue.sqs, queue.url, Recorder(answer), report_batch_item_failures=True
    )
    assert mapping.poll() == PollResult(received=3, deleted=3, left=0)
    assert queue.bodies() == []


def unknown_id(event: dict[str, Any]) -> dict[str, Any]:
    first = event["Records"][0]["messageId"]
    return {"batchItemFailures": [{"itemIdentifier": first}, {"itemIdentifier": "not-in-batch"}]}


def bad_key_name(event: dict[str, Any]) -> dict[str, Any]:
    return {"batchItemFailures": [{"messageId": event["Records"][0]["messageId"]}]}


@pytest.mark.parametrize(
    ("answer", "reason"),
    [
        (unknown_id, "'not-in-batch' is not in the batch"),
        ({"batchItemFailures": [{"itemIdentifier": ""}]}, "no itemIdentifier"),
        ({"batchItemFailures": [{"itemIdentifier": None}]}, "no itemIdentifier"),
        (bad_key_name, "no itemIdentifier"),
        ({"batchItemFailures": "all of them"}, "not a list"),
        ("ok", "not an object"),
        ({"batchItemFailures": [], "when": object()}, "Runtime.MarshalError"),
    ],
    ids=["unknown-id", "empty-id", "null-id", "bad-key", "not-a-list", "not-an-object", "no-json"],
)
def test_an_answer_lambda_cannot_use_fails_the_whole_batch(
    queue: Queue, answer: Any, reason: str
) -> None:
    bodies = queue.send(4)
    mapping = LocalEventSourceMapping(
        queue.sqs, queue.url, Recorder(answer), report_batch_item_failures=True
    )
    result = mapping.poll()
    assert (result.received, result.deleted, result.left) == (4, 0, 4)
    assert result.error is not None
    assert reason in result.error
    assert queue.bodies() == sorted(bodies)


def test_an_unusable_answer_is_ignored_without_the_mapping_setting(queue: Queue) -> None:
    queue.send(4)
    mapping = LocalEventSourceMapping(queue.sqs, queue.url, Recorder(unknown_id))
    assert mapping.poll() == PollResult(received=4, deleted=4, left=0)
    assert queue.bodies() == []


@pytest.mark.parametrize("reports", [False, True])
def test_handler_exception_keeps_the_whole_batch(queue: Queue, reports: bool) -> None:
    bodies = queue.send(6)
    mapping = LocalEventSourceMapping(
        queue.sqs, queue.url, always_raise, report_batch_item_failures=reports
    )
    result = mapping.poll()
    assert (result.received, result.deleted, result.left) == (6, 0, 6)
    assert result.error == "RuntimeError: downstream is down"
    assert queue.bodies() == sorted(bodies)  # back at once: redeliver_at_once


def test_failures_wait_for_the_visibility_timeout_like_lambda(sqs: SQSClient) -> None:
    queue = make_queue(sqs, visibility_timeout=2)
    queue.send(2)
    mapping = LocalEventSourceMapping(queue.sqs, queue.url, always_raise, redeliver_at_once=False)
    assert mapping.poll().left == 2
    assert mapping.poll().received == 0  # still hidden
    assert queue.in_flight() == 2
    retried = mapping.poll(wait_seconds=6)  # back once the 2 s timeout is over
    assert (retried.received, retried.left) == (2, 2)


def test_messages_failing_max_receive_count_times_move_to_the_dead_letter_queue(
    sqs: SQSClient,
) -> None:
    queue = make_queue(sqs, max_receive_count=2)
    bodies = queue.send(3)
    handler = Recorder(always_raise)
    mapping = LocalEventSourceMapping(queue.sqs, queue.url, handler, redeliver_at_once=True)

    assert [mapping.poll().error is not None for _ in range(2)] == [True, True]
    # moto applies the redrive policy on receive, as SQS does: nothing is handed over.
    assert mapping.poll() == PollResult(0, 0, 0)
    counts = [
        {r["attributes"]["ApproximateReceiveCount"] for r in e["Records"]} for e in handler.events
    ]
    assert counts == [{"1"}, {"2"}]
    assert queue.bodies() == []
    assert queue.bodies(queue.dead_letter_url) == sorted(bodies)


# run() ------------------------------------------------------------------------------------------


class Polls:
    """Collects what `run` reports, and lets a test wait for it."""

    def __init__(self) -> None:
        self.results: list[PollResult] = []
        self._changed = threading.Condition()

    def __call__(self, result: PollResult) -> None:
        with self._changed:
            self.results.append(result)
            self._changed.notify_all()

    def wait_for(self, count: int, timeout: float = 10) -> list[PollResult]:
        with self._changed:
            assert self._changed.wait_for(lambda: len(self.results) >= count, timeout)
            return list(self.results)


@pytest.fixture
def run_in_thread() -> Iterator[Any]:
    """Starts `mapping.run` in a thread; the test stops it, and it is stopped anyway after."""
    running: list[tuple[threading.Event, threading.Thread]] = []

    def start(mapping: LocalEventSourceMapping, polls: Polls) -> tuple[threading.Event, Any]:
        stop = threading.Event()
        thread = threading.Thread(target=mapping.run, args=(stop, polls), daemon=True)
        thread.start()
        running.append((stop, thread))

        def stop_and_time() -> float:
            started = time.monotonic()
            stop.set()
            thread.join(timeout=10)
            assert not thread.is_alive()
            return time.monotonic() - started

        return stop, stop_and_time

    yield start
    for stop, thread in running:
        stop.set()
        thread.join(timeout=10)


def test_run_delivers_until_stopped_and_stops_promptly(queue: Queue, run_in_thread: Any) -> None:
    handler = Recorder()
    polls = Polls()
    _, stop = run_in_thread(LocalEventSourceMapping(queue.sqs, queue.url, handler), polls)

    bodies = queue.send(3)
    assert sum(r.received for r in polls.wait_for(1)) >= 1
    while sum(r.received for r in polls.results) < 3:
        polls.wait_for(len(polls.results) + 1)
    assert stop() < 3  # one short long poll, not SQS's 20 s
    assert sorted(r["body"] for e in handler.events for r in e["Records"]) == sorted(bodies)
    assert queue.bodies() == []


def test_run_survives_a_failing_handler(queue: Queue, run_in_thread: Any) -> None:
    calls = 0

    def fail_once(event: dict[str, Any]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise RuntimeError("first call fails")

    queue.send(2)  # before the loop starts, so its first poll takes both
    polls = Polls()
    _, stop = run_in_thread(LocalEventSourceMapping(queue.sqs, queue.url, fail_once), polls)
    first, second = polls.wait_for(2)[:2]
    assert (first.received, first.left, first.error) == (2, 2, "RuntimeError: first call fails")
    assert (second.received, second.deleted, second.error) == (2, 2, None)
    assert stop() < 3


def test_run_survives_sqs_errors_and_backs_off(queue: Queue, run_in_thread: Any) -> None:
    mapping = LocalEventSourceMapping(queue.sqs, queue.url, Recorder())
    queue.sqs.delete_queue(QueueUrl=queue.url)  # every receive now fails
    polls = Polls()
    _, stop = run_in_thread(mapping, polls)
    started = time.monotonic()
    failures = polls.wait_for(2)
    assert all(r.received == 0 and r.error for r in failures)
    assert "QueueDoesNotExist" in str(failures[0].error)
    time.sleep(1)
    assert len(polls.results) < 6  # backing off (0.5 s, 1 s, 2 s...), not spinning
    assert time.monotonic() - started < 10
    assert stop() < 3


def test_run_hands_over_a_batch_gathered_when_stopped(queue: Queue, run_in_thread: Any) -> None:
    handler = Recorder()
    polls = Polls()
    mapping = LocalEventSourceMapping(queue.sqs, queue.url, handler, batching_window_seconds=60)
    _, stop = run_in_thread(mapping, polls)
    queue.send(2)
    deadline = time.monotonic() + 10
    while queue.in_flight() < 2 and time.monotonic() < deadline:
        time.sleep(0.1)  # received, and the 60 s window is open
    assert stop() < 3
    [result] = polls.results
    assert (result.received, result.deleted) == (2, 2)
    assert handler.batch_sizes == [2]
