"""One SQS batch in, every message accounted for: delivered, parked with a reason, or retried.

Lambda deletes a whole batch when the handler returns normally, unless the event source
mapping has `ReportBatchItemFailures`, which Chalice cannot turn on. So there are two ways to
finish a batch that has retries:

- `report_batch_item_failures=True` (only when the mapping has the setting): return
  `batchItemFailures`; Lambda deletes the rest.
- otherwise (the default, safe with either mapping): delete the finished messages ourselves,
  then raise, so Lambda returns only what is left to the queue.

Either way no retryable message is deleted and no delivered event is sent again, unless SQS
itself fails to delete it (then it comes back: delivery is at least once, with stable ids).

An event and its profile update can fare differently. An event that was recorded is never
sent again, so a profile update that failed beside it is parked with its reason. An event
that must be retried after its profile update landed goes back to the queue without the
update, so the retry cannot overwrite a newer value with an older one.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from chalicelib import telemetry
from chalicelib.destinations.base import Destination, Outcome, TimeLeft, Verdict
from chalicelib.events import Event, MessageError, ProfileUpdate
from chalicelib.queue import BatchQueue, DeadLetter, DeadLetterQueue, Receipt

LambdaAnswer = dict[str, list[dict[str, str]]]


class BatchIncompleteError(RuntimeError):
    """When some messages must be retried and Lambda will only keep them if we raise."""


@dataclass(frozen=True)
class QueuedMessage:
    """The parts of an SQS record the consumer uses."""

    message_id: str
    receipt_handle: str
    body: str

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> QueuedMessage:
        return cls(record["messageId"], record["receiptHandle"], record["body"])

    @property
    def receipt(self) -> Receipt:
        return Receipt(self.message_id, self.receipt_handle)


@dataclass(frozen=True)
class BatchReport:
    """What became of a batch, by message id."""

    delivered: tuple[str, ...]
    parked: tuple[str, ...]
    retry: tuple[str, ...]
    profiles_parked: int = 0

    def lambda_response(self) -> LambdaAnswer:
        return {"batchItemFailures": [{"itemIdentifier": i} for i in self.retry]}


@dataclass
class _Settlement:
    """Decisions for one batch, gathered before any queue is written."""

    delivered: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    letters: list[DeadLetter] = field(default_factory=list)
    profile_letters: list[DeadLetter] = field(default_factory=list)
    requeue: list[tuple[str, Event]] = field(default_factory=list)
    retry_reasons: Counter[str] = field(default_factory=Counter)


class BatchDelivery:
    """Decodes a batch, hands it to the destination and settles every message."""

    def __init__(
        self,
        destination: Destination,
        dead_letters: DeadLetterQueue,
        events_queue: BatchQueue,
        report_batch_item_failures: bool,
    ) -> None:
        self._destination = destination
        self._dead_letters = dead_letters
        self._events_queue = events_queue
        self._report_batch_item_failures = report_batch_item_failures

    def handle(self, messages: Sequence[QueuedMessage], time_left: TimeLeft = None) -> LambdaAnswer:
        """The Lambda handler's answer; raises BatchIncompleteError in the safe mode."""
        try:
            return self._finish(messages, self.settle(messages, time_left))
        finally:
            telemetry.publish()

    def _finish(self, messages: Sequence[QueuedMessage], report: BatchReport) -> LambdaAnswer:
        telemetry.count("EventsDelivered", len(report.delivered))
        telemetry.count("EventsRejected", len(report.parked))
        telemetry.count("EventsRetried", len(report.retry))
        telemetry.count("ProfileUpdatesParked", report.profiles_parked)
        telemetry.logger.info(
            "batch settled",
            extra={
                "destination": self._destination.name,
                "messages": len(messages),
                "delivered": len(report.delivered),
                "parked": len(report.parked),
                "retry": len(report.retry),
                "profiles_parked": report.profiles_parked,
            },
        )
        if not report.retry or self._report_batch_item_failures:
            return report.lambda_response()
        retry = set(report.retry)
        undeleted = self._events_queue.delete(
            [m.receipt for m in messages if m.message_id not in retry]
        )
        if undeleted:
            telemetry.logger.warning(
                "finished messages not deleted; they will be delivered again",
                extra={"count": len(undeleted)},
            )
        raise BatchIncompleteError(
            f"{len(report.retry)} of {len(messages)} messages will be retried; "
            "the others are finished and deleted"
        )

    def settle(self, messages: Sequence[QueuedMessage], time_left: TimeLeft = None) -> BatchReport:
        """Deliver, then write what must be written (dead letters, requeued events)."""
        plan = _Settlement()
        events: list[Event] = []
        event_messages: list[QueuedMessage] = []
        for message in messages:
            try:
                events.append(Event.from_message(message.body))
                event_messages.append(message)
            except MessageError as error:
                plan.letters.append(
                    DeadLetter(message.message_id, message.body, str(error), "decode")
                )
        outcomes = self._destination.deliver(events, time_left) if events else []
        for message, event, outcome in zip(event_messages, events, outcomes, strict=True):
            self._decide(plan, message, event, outcome)
        return self._write(plan)

    def _decide(
        self, plan: _Settlement, message: QueuedMessage, event: Event, outcome: Outcome
    ) -> None:
        stage = self._destination.name
        if outcome.verdict is Verdict.REJECTED:
            plan.letters.append(DeadLetter(message.message_id, message.body, outcome.reason, stage))
            return
        if outcome.verdict is Verdict.RETRY:
            plan.retry_reasons[outcome.reason] += 1
            if outcome.profile is Verdict.DELIVERED:
                # Retry the event alone: its profile update already landed.
                plan.requeue.append((message.message_id, replace(event, profile=ProfileUpdate())))
            else:
                plan.retry.append(message.message_id)
            return
        plan.delivered.append(message.message_id)
        if outcome.profile in (Verdict.REJECTED, Verdict.RETRY):
            plan.profile_letters.append(
                DeadLetter(
                    message.message_id, message.body, outcome.profile_reason, f"{stage}:profile"
                )
            )

    def _write(self, plan: _Settlement) -> BatchReport:
        retry = list(plan.retry)
        unqueued = set(self._events_queue.requeue(plan.requeue)) if plan.requeue else set()
        retry.extend(message_id for message_id, _ in plan.requeue if message_id in unqueued)

        letters = plan.letters + plan.profile_letters
        unparked = set(self._dead_letters.park(letters)) if letters else set()
        for letter in letters:
            telemetry.logger.warning(
                "message rejected",
                extra={
                    "stage": letter.stage,
                    "reason": letter.reason,
                    "kept_on_dead_letter_queue": letter.message_id not in unparked,
                },
            )
        # A letter that could not be parked is retried rather than lost; for a profile
        # letter that means sending its event again (at least once, same event id).
        retry.extend(x.message_id for x in letters if x.message_id in unparked)
        if plan.retry_reasons:
            telemetry.logger.warning(
                "events will be retried",
                extra={"destination": self._destination.name, "reasons": dict(plan.retry_reasons)},
            )
        retry_ids = set(retry)
        return BatchReport(
            delivered=tuple(i for i in plan.delivered if i not in retry_ids),
            parked=tuple(x.message_id for x in plan.letters if x.message_id not in unparked),
            retry=tuple(dict.fromkeys(retry)),
            profiles_parked=sum(1 for x in plan.profile_letters if x.message_id not in unparked),
        )
