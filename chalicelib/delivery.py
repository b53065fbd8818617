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
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from chalicelib import telemetry
from chalicelib.destinations.base import Destination, Verdict
from chalicelib.events import Event, MessageError
from chalicelib.queue import BatchQueue, DeadLetter, DeadLetterQueue, Receipt


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

    def lambda_response(self) -> dict[str, list[dict[str, str]]]:
        return {"batchItemFailures": [{"itemIdentifier": i} for i in self.retry]}


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

    def handle(self, messages: Sequence[QueuedMessage]) -> dict[str, list[dict[str, str]]]:
        """The Lambda handler's answer; raises BatchIncompleteError in the safe mode (see above)."""
        try:
            return self._finish(messages, self.settle(messages))
        finally:
            telemetry.publish()

    def _finish(
        self, messages: Sequence[QueuedMessage], report: BatchReport
    ) -> dict[str, list[dict[str, str]]]:
        telemetry.count("EventsDelivered", len(report.delivered))
        telemetry.count("EventsRejected", len(report.parked))
        telemetry.count("EventsRetried", len(report.retry))
        telemetry.logger.info(
            "batch settled",
            extra={
                "destination": self._destination.name,
                "messages": len(messages),
                "delivered": len(report.delivered),
                "parked": len(report.parked),
                "retry": len(report.retry),
            },
        )
        if not report.retry or self._report_batch_item_failures:
            return report.lambda_response()
        finished = [m.receipt for m in messages if m.message_id not in set(report.retry)]
        undeleted = self._events_queue.delete(finished)
        if undeleted:
            telemetry.logger.warning(
                "finished messages not deleted; they will be delivered again",
                extra={"count": len(undeleted)},
            )
        raise BatchIncompleteError(
            f"{len(report.retry)} of {len(messages)} messages will be retried; "
            "the others are finished and deleted"
        )

    def settle(self, messages: Sequence[QueuedMessage]) -> BatchReport:
        events: list[Event] = []
        event_messages: list[QueuedMessage] = []
        letters: list[DeadLetter] = []
        for message in messages:
            try:
                events.append(Event.from_message(message.body))
                event_messages.append(message)
            except MessageError as error:
                letters.append(DeadLetter(message.message_id, message.body, str(error), "decode"))

        delivered: list[str] = []
        retry: list[str] = []
        retry_reasons: Counter[str] = Counter()
        outcomes = self._destination.deliver(events) if events else []
        for message, outcome in zip(event_messages, outcomes, strict=True):
            if outcome.verdict is Verdict.DELIVERED:
                delivered.append(message.message_id)
            elif outcome.verdict is Verdict.REJECTED:
                letters.append(
                    DeadLetter(
                        message.message_id, message.body, outcome.reason, self._destination.name
                    )
                )
            else:
                retry.append(message.message_id)
                retry_reasons[outcome.reason] += 1
        if retry_reasons:
            telemetry.logger.warning(
                "events will be retried",
                extra={"destination": self._destination.name, "reasons": dict(retry_reasons)},
            )

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
        parked = tuple(x.message_id for x in letters if x.message_id not in unparked)
        retry.extend(x.message_id for x in letters if x.message_id in unparked)
        return BatchReport(delivered=tuple(delivered), parked=parked, retry=tuple(retry))
