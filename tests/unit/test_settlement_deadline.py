"""A batch of 1,000 against a slow SQS (2 s a call) and Lambda's deadline: nothing delivered
is left undeleted when the deadline strikes, in both mapping settings.

Time is real but scaled (1 simulated second = 40 ms), so the settlement pool's calls really
overlap; an SQS call that would complete after the deadline never happens (Lambda killed the
invocation), exactly like the 395 duplicates the issue measured.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import pytest

from chalicelib.delivery import BatchDelivery, BatchIncompleteError, QueuedMessage
from chalicelib.destinations.base import call_budget_ms
from chalicelib.destinations.pinpoint import PinpointDestination
from chalicelib.settlement import CONSUMER_SQS, BatchQueue, DeadLetterQueue, SqsCallLimits
from tests.factories import message_body

# Simulated seconds per real second. The consumer's own CPU work counts at this scale too,
# so a larger one turns a stall of the test machine into minutes of Lambda's time.
SCALE = 25
SQS_CALL_S = 2.0
BATCH = 1000


class Clock:
    def __init__(self, timeout_s: float) -> None:
        self.start = time.monotonic()
        self.timeout_s = timeout_s

    def now(self) -> float:
        return (time.monotonic() - self.start) * SCALE

    def time_left(self) -> int:
        return int((self.timeout_s - self.now()) * 1000)

    def sleep(self, seconds: float) -> None:
        time.sleep(seconds / SCALE)


@dataclass
class SlowSqs:
    """SQS answering every call in 2 s; a call finishing after the deadline did not happen."""

    clock: Clock
    deleted: set[str] = field(default_factory=set)
    sent: dict[str, list[str]] = field(default_factory=dict)
    late_calls: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # noqa: N803
        return {"QueueUrl": QueueName}

    def _finish(self, apply: Callable[[], None]) -> dict[str, Any]:
        self.clock.sleep(SQS_CALL_S)
        with self.lock:
            if self.clock.now() > self.clock.timeout_s:
                self.late_calls += 1
            else:
                apply()
        return {"Failed": [], "Successful": []}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
        return self._finish(lambda: self.deleted.update(e["ReceiptHandle"] for e in Entries))

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> Any:  # noqa: N803
        bodies = [e["MessageBody"] for e in Entries]
        return self._finish(lambda: self.sent.setdefault(QueueUrl, []).extend(bodies))


class SlowPinpoint:
    """Accepts every event (but rejects e-*7, to give settlement letters to send), slowly."""

    def __init__(self, clock: Clock, call_s: float) -> None:
        self.clock = clock
        self.call_s = call_s
        self.accepted: list[str] = []

    def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> Any:  # noqa: N803
        self.clock.sleep(self.call_s)
        results = {}
        for endpoint, item in EventsRequest["BatchItem"].items():
            answers = {}
            for event_id in item["Events"]:
                status = 400 if event_id.endswith("7") else 202
                answers[event_id] = {"StatusCode": status, "Message": "m"}
                if status == 202 and self.clock.now() <= self.clock.timeout_s:
                    self.accepted.append(event_id)
            results[endpoint] = {
                "EndpointItemResponse": {"StatusCode": 202},
                "EventsItemResponse": answers,
            }
        return {"EventsResponse": {"Results": results}}


def batch() -> list[QueuedMessage]:
    return [
        QueuedMessage(
            f"m-{n}",
            f"m-{n}",  # the receipt handle names the message, for the fake's bookkeeping
            message_body(n, endpoint_id=f"ep-{n}"),
        )
        for n in range(BATCH)
    ]


@dataclass(frozen=True)
class Run:
    delivered: set[str]  # message ids whose event Pinpoint recorded before the deadline
    finished: set[str]  # message ids that will not come back
    ended_at: float
    late_calls: int

    @property
    def duplicates(self) -> int:
        """Recorded, yet coming back to be delivered again."""
        return len(self.delivered - self.finished)


def run(
    report_mode: bool,
    timeout_s: float,
    limits: SqsCallLimits | None,
    workers: int,
    budget: int,
    pinpoint_call_s: float,
) -> Run:
    messages = batch()  # built before the invocation starts: SQS hands them over
    clock = Clock(timeout_s)
    sqs = SlowSqs(clock)
    pinpoint = SlowPinpoint(clock, pinpoint_call_s)
    pool = ThreadPoolExecutor(workers) if workers > 1 else None
    consumer = BatchDelivery(
        [PinpointDestination(pinpoint, "app", budget)],  # type: ignore[arg-type]
        DeadLetterQueue(sqs, "dlq", pool),  # type: ignore[arg-type]
        BatchQueue(sqs, "events", pool),  # type: ignore[arg-type]
        report_mode,
        limits,
    )
    try:
        answer = consumer.handle(messages, clock.time_left)
        failures = {f["itemIdentifier"] for f in answer["batchItemFailures"]}
    except BatchIncompleteError:
        failures = None
    ended_at = clock.now()
    if pool is not None:
        pool.shutdown()
    everyone = {m.message_id for m in messages}
    if ended_at > timeout_s:
        finished = set(sqs.deleted)  # killed: Lambda deletes nothing
    elif failures is None:
        finished = set(sqs.deleted)  # default mode: what the consumer deleted itself
    else:
        finished = everyone - failures  # Lambda deletes all but the reported failures
    delivered = {f"m-{event_id[2:]}" for event_id in pinpoint.accepted}
    return Run(delivered, finished, ended_at, sqs.late_calls)


@pytest.mark.parametrize("report_mode", [False, True], ids=["default-mapping", "report-failures"])
def test_a_batch_of_1000_settles_before_the_deadline_with_no_duplicate(report_mode: bool) -> None:
    # 240 s fits a batch of 1,000 (settlement_problem); Pinpoint answering in 15 s a call
    # cannot finish the ten calls before the reserve: the rest is answered "out of time".
    result = run(report_mode, 240, CONSUMER_SQS, CONSUMER_SQS.workers, call_budget_ms(10), 15)
    assert result.late_calls == 0
    assert result.ended_at < 240
    assert len(result.delivered) > 500  # it did deliver, and stopped early enough
    assert result.duplicates == 0


def test_without_the_reserve_the_same_batch_leaves_delivered_messages_undeleted() -> None:
    """The consumer before this change (no reserve, 5 s for settling inside the call budget,
    one delete call after another): the scenario above catches it."""
    result = run(False, 60, None, 1, call_budget_ms(10) + 5000, 5)
    assert result.late_calls > 0
    assert result.duplicates > 0
