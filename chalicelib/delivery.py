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

With several destinations (fan-out), each is judged apart: a destination that recorded an
event never receives it again because another failed. The copy that goes back to the queue
names only the destinations still owed it; a rejection is parked for its destination only.

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
    requeued: int = 0  # finished here; a copy went back for the destinations still owed

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
    partly_delivered: list[str] = field(default_factory=list)  # the rest parked
    retry_reasons: Counter[str] = field(default_factory=Counter)


class BatchDelivery:
    """Decodes a batch, hands it to the destination and settles every message."""

    def __init__(
        self,
        destinations: Sequence[Destination],
        dead_letters: DeadLetterQueue,
        events_queue: BatchQueue,
        report_batch_item_failures: bool,
    ) -> None:
        self._destinations = list(destinations)
        self._names = tuple(d.name for d in destinations)
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
        telemetry.count("EventsRequeued", report.requeued)
        telemetry.logger.info(
            "batch settled",
            extra={
                "destinations": list(self._names),
                "messages": len(messages),
                "delivered": len(report.delivered),
                "parked": len(report.parked),
                "retry": len(report.retry),
                "profiles_parked": report.profiles_parked,
                "requeued": report.requeued,
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
        """Deliver to every destination owed each event, then write what must be written
        (dead letters, requeued copies)."""
        plan = _Settlement()
        decoded: list[tuple[QueuedMessage, Event]] = []
        for message in messages:
            try:
                decoded.append((message, Event.from_message(message.body)))
            except MessageError as error:
                plan.letters.append(
                    DeadLetter(message.message_id, message.body, str(error), "decode")
                )
        results: list[dict[str, Outcome]] = [{} for _ in decoded]
        for destination in self._destinations:
            owed = [i for i, (_, event) in enumerate(decoded) if self._owes(event, destination)]
            if not owed:
                continue
            answers = destination.deliver([decoded[i][1] for i in owed], time_left)
            for index, outcome in zip(owed, answers, strict=True):
                results[index][destination.name] = outcome
        for (message, event), outcomes in zip(decoded, results, strict=True):
            self._decide(plan, message, event, outcomes)
        return self._write(plan)

    def _owes(self, event: Event, destination: Destination) -> bool:
        return event.destinations is None or destination.name in event.destinations

    def _decide(
        self, plan: _Settlement, message: QueuedMessage, event: Event, outcomes: dict[str, Outcome]
    ) -> None:
        if not outcomes:
            plan.letters.append(
                DeadLetter(
                    message.message_id,
                    message.body,
                    f"no configured destination among {', '.join(event.destinations or ())}",
                    "routing",
                )
            )
            return
        fanned_out = len(self._names) > 1 or event.destinations is not None
        gone = tuple(n for n in event.destinations or () if n not in self._names)
        if gone:
            # Owed to destinations no longer configured: kept for them, never dropped.
            plan.letters.append(
                DeadLetter(
                    message.message_id,
                    replace(event, destinations=gone).to_message(),
                    f"no configured destination among {', '.join(gone)}",
                    "routing",
                )
            )
        retry = {n: o for n, o in outcomes.items() if o.verdict is Verdict.RETRY}
        for name, outcome in outcomes.items():
            if outcome.verdict is Verdict.REJECTED:
                body = self._body_for(event, message, (name,), fanned_out)
                plan.letters.append(DeadLetter(message.message_id, body, outcome.reason, name))
            elif outcome.verdict is Verdict.DELIVERED and outcome.profile in (
                Verdict.REJECTED,
                Verdict.RETRY,
            ):
                body = self._body_for(event, message, (name,), fanned_out)
                plan.profile_letters.append(
                    DeadLetter(message.message_id, body, outcome.profile_reason, f"{name}:profile")
                )
        for outcome in retry.values():
            plan.retry_reasons[outcome.reason] += 1
        untouched = len(retry) == len(outcomes) and all(
            o.profile is not Verdict.DELIVERED for o in retry.values()
        )
        if retry and untouched:
            plan.retry.append(message.message_id)  # nothing happened anywhere: retry as is
        elif retry:
            # Some destinations have the event (or its profile update): only the rest get a
            # copy, and a copy whose profile update already landed goes without it, so a
            # retry cannot write an older value over a newer one.
            variants: dict[bool, list[str]] = {}
            for name, outcome in retry.items():
                variants.setdefault(outcome.profile is Verdict.DELIVERED, []).append(name)
            for strip, names in variants.items():
                copy = replace(event, destinations=tuple(names))
                if strip:
                    copy = replace(copy, profile=ProfileUpdate())
                plan.requeue.append((message.message_id, copy))
        elif all(o.verdict is Verdict.DELIVERED for o in outcomes.values()):
            plan.delivered.append(message.message_id)
        else:
            plan.partly_delivered.append(message.message_id)

    @staticmethod
    def _body_for(
        event: Event, message: QueuedMessage, names: tuple[str, ...], fanned_out: bool
    ) -> str:
        """The message to park: unchanged with one destination, else naming the one owed."""
        return replace(event, destinations=names).to_message() if fanned_out else message.body

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
                extra={"destinations": list(self._names), "reasons": dict(plan.retry_reasons)},
            )
        retry_ids = set(retry)
        return BatchReport(
            delivered=tuple(i for i in plan.delivered if i not in retry_ids),
            parked=tuple(
                dict.fromkeys(x.message_id for x in plan.letters if x.message_id not in unparked)
            ),
            retry=tuple(dict.fromkeys(retry)),
            requeued=len({i for i, _ in plan.requeue if i not in unqueued}),
            profiles_parked=sum(1 for x in plan.profile_letters if x.message_id not in unparked),
        )
