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

Settling takes SQS calls (dead letters and copies, then deletes), and a finished message left
undeleted when Lambda's deadline strikes is delivered again. So destinations are given the
Lambda time left minus a reserve for settling (`settlement_reserve_ms`): the worst case of
the SQS calls the batch may still need, run `SqsCallLimits.workers` at a time. What is not
started in time is answered RETRY "out of time" and goes back to the queue unchanged.

A destination that raises, or an event whose request cannot be built, costs that
destination's events (or that one event) a retry (or a rejection), never the batch.

Two messages of one batch for the same event (a resend, a redelivery, a requeued copy meeting
its original) reach each destination once and share its outcome.

With erasure on (`ERASURE_TABLE`), the batch's events of forgotten visitors are dropped before
any destination sees them (`chalicelib/erasure.py`); when that list cannot be read, the
batch's events are retried rather than delivered unchecked.

An event and its profile update can fare differently. An event that was recorded is never
sent again, so a profile update that failed beside it is parked with its reason. An event
that must be retried after its profile update landed goes back to the queue without the
update, so the retry cannot overwrite a newer value with an older one.
"""

from __future__ import annotations

import functools
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Protocol, TypedDict

from chalicelib import telemetry
from chalicelib.dedupe import deliver_once_each
from chalicelib.erasure import SuppressionUnavailableError
from chalicelib.events import Event, MessageError, ProfileUpdate
from chalicelib.outcomes import Outcome, Recipient, TimeLeft, Verdict
from chalicelib.settlement import (
    DeadLetter,
    Receipt,
    SqsCallLimits,
    large_entry_bytes,
    reserve_ms,
)

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from chalicelib.erasure import SuppressionList


class BatchItemFailure(TypedDict):
    """One message Lambda must return to the queue."""

    itemIdentifier: str


class LambdaAnswer(TypedDict):
    """The SQS handler's answer (partial batch response); Lambda honours it only when the
    event source mapping has ReportBatchItemFailures."""

    batchItemFailures: list[BatchItemFailure]


class DeadLetters(Protocol):
    """Where rejections are kept with their reason (`settlement.DeadLetterQueue`)."""

    def park(self, letters: Iterable[DeadLetter]) -> list[str]:
        """Send the letters; return the ids of the messages whose letter was not sent."""
        ...


class EventsQueue(Protocol):
    """The consumer's own queue (`settlement.BatchQueue`)."""

    def requeue(self, events: Iterable[tuple[str, Event]]) -> list[str]:
        """Send copies (message id, event); return the ids whose copy was not sent."""
        ...

    def delete(self, receipts: Iterable[Receipt]) -> list[str]:
        """Delete messages; return the ids SQS did not delete."""
        ...


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
    erased: int = 0  # of forgotten visitors: dropped, sent nowhere (chalicelib/erasure.py)

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
    erased: list[str] = field(default_factory=list)  # of forgotten visitors: dropped


class BatchDelivery:
    """Decodes a batch, hands it to the destination and settles every message."""

    def __init__(
        self,
        destinations: Sequence[Recipient],
        dead_letters: DeadLetters,
        events_queue: EventsQueue,
        report_batch_item_failures: bool,
        sqs_limits: SqsCallLimits | None = None,
        pool: Executor | None = None,
        suppression: SuppressionList | None = None,
    ) -> None:
        """`sqs_limits`: the consumer's SQS client, whose worst case the settlement reserve
        is made of; None keeps no reserve (tests without SQS). `pool`: the consumer's
        threads (`runtime`), which send dead letters while copies are requeued; None
        sends one after the other. `suppression`: the list of forgotten visitors
        (ERASURE_TABLE), read before any destination; None: erasure off, no look-up."""
        self._destinations = list(destinations)
        self._names = tuple(d.name for d in destinations)
        self._dead_letters = dead_letters
        self._events_queue = events_queue
        self._report_batch_item_failures = report_batch_item_failures
        self._sqs_limits = sqs_limits
        self._pool = pool
        self._suppression = suppression

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
        telemetry.count("EventsErased", report.erased)
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
                "erased": report.erased,
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
        decoded = self._without_erased(plan, decoded, time_left)
        results: list[dict[str, Outcome]] = [{} for _ in decoded]
        owed_by = [
            [i for i, (_, event) in enumerate(decoded) if self._owes(event, destination)]
            for destination in self._destinations
        ]
        # Settlement entries this batch may still need: the letters known now, and one letter
        # or copy for each event at each destination not yet answered clean; and the bytes
        # of those large enough to need calls of their own (bodies near SQS's 1 MiB).
        unsettled = (
            len(plan.letters)
            + sum(1 for _, event in decoded if self._routing_letter(event))
            + sum(len(owed) for owed in owed_by)
        )
        large = sum(large_entry_bytes(message.body) for message in messages)
        for destination, owed in zip(self._destinations, owed_by, strict=True):
            if not owed:
                continue
            allowed = self._time_for_destinations(time_left, unsettled, len(messages), large)
            events = [decoded[i][1] for i in owed]
            answers = deliver_once_each(
                events, functools.partial(self._deliver_to, destination, time_left=allowed)
            )
            for index, outcome in zip(owed, answers, strict=True):
                results[index][destination.name] = outcome
                if outcome.verdict is Verdict.DELIVERED and outcome.profile not in (
                    Verdict.REJECTED,
                    Verdict.RETRY,
                ):
                    unsettled -= 1
        for (message, event), outcomes in zip(decoded, results, strict=True):
            self._decide(plan, message, event, outcomes)
        return self._write(plan)

    def _without_erased(
        self,
        plan: _Settlement,
        decoded: list[tuple[QueuedMessage, Event]],
        time_left: TimeLeft,
    ) -> list[tuple[QueuedMessage, Event]]:
        """The decoded messages whose visitor is not forgotten (chalicelib/erasure.py). The
        others are dropped: done, sent nowhere. A list that cannot be read retries them
        all, so that none of a forgotten visitor is delivered for want of a look-up."""
        if self._suppression is None or not decoded:
            return decoded
        try:
            erased = self._suppression.erased([event for _, event in decoded], time_left)
        except SuppressionUnavailableError as error:
            telemetry.count("ErasureListReadFailures", len(decoded))
            reason = f"erasure list not read: {error}"
            plan.retry.extend(message.message_id for message, _ in decoded)
            plan.retry_reasons[reason] += len(decoded)
            return []
        if erased:
            plan.erased.extend(decoded[i][0].message_id for i in sorted(erased))
            telemetry.logger.info(
                "events of forgotten visitors dropped", extra={"events": len(erased)}
            )
        return [pair for i, pair in enumerate(decoded) if i not in erased]

    def _time_for_destinations(
        self, time_left: TimeLeft, unsettled: int, messages: int, large_bytes: int
    ) -> TimeLeft:
        """Lambda's time left minus the reserve for settling: what a destination may spend."""
        if time_left is None or self._sqs_limits is None:
            return time_left
        deletes = 0 if self._report_batch_item_failures else messages
        reserve = reserve_ms(self._sqs_limits, unsettled, deletes, large_bytes)
        remaining = time_left
        return lambda: remaining() - reserve

    def _deliver_to(
        self, destination: Recipient, events: Sequence[Event], time_left: TimeLeft
    ) -> list[Outcome]:
        """The second wall: whatever a destination raises is a retry of its events there,
        never the batch's failure (the other destinations' outcomes stand)."""
        try:
            answers = destination.deliver(events, time_left)
            if len(answers) != len(events):
                raise RuntimeError(f"{len(answers)} outcomes for {len(events)} events")
        except Exception as error:  # the batch must survive any one destination's bug
            telemetry.failure("destination failed", error, destination=destination.name)
            telemetry.count("DestinationErrors")
            reason = f"{destination.name} failed: {type(error).__name__}"
            return [Outcome(Verdict.RETRY, reason)] * len(events)
        return answers

    def _routing_letter(self, event: Event) -> bool:
        """Whether the event leaves a routing letter (a destination it names is gone)."""
        return event.destinations is not None and (
            not event.destinations or any(n not in self._names for n in event.destinations)
        )

    def _owes(self, event: Event, destination: Recipient) -> bool:
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
                    event,
                )
            )
            return
        fanned_out = len(self._names) > 1 or event.destinations is not None
        gone = tuple(n for n in event.destinations or () if n not in self._names)
        if gone:
            # Owed to destinations no longer configured: kept for them, never dropped.
            owed_elsewhere = replace(event, destinations=gone)
            plan.letters.append(
                DeadLetter(
                    message.message_id,
                    owed_elsewhere.to_message(),
                    f"no configured destination among {', '.join(gone)}",
                    "routing",
                    owed_elsewhere,
                )
            )
        retry = {n: o for n, o in outcomes.items() if o.verdict is Verdict.RETRY}
        for name, outcome in outcomes.items():
            if outcome.verdict is Verdict.REJECTED:
                body, parked = self._parked(event, message, (name,), fanned_out)
                plan.letters.append(
                    DeadLetter(message.message_id, body, outcome.reason, name, parked)
                )
            elif outcome.verdict is Verdict.DELIVERED and outcome.profile in (
                Verdict.REJECTED,
                Verdict.RETRY,
            ):
                body, parked = self._parked(event, message, (name,), fanned_out)
                plan.profile_letters.append(
                    DeadLetter(
                        message.message_id,
                        body,
                        outcome.profile_reason,
                        f"{name}:profile",
                        parked,
                    )
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
    def _parked(
        event: Event, message: QueuedMessage, names: tuple[str, ...], fanned_out: bool
    ) -> tuple[str, Event]:
        """The message to park and the event it carries: unchanged with one destination,
        else naming the one owed."""
        if not fanned_out:
            return message.body, event
        owed = replace(event, destinations=names)
        return owed.to_message(), owed

    def _write(self, plan: _Settlement) -> BatchReport:
        retry = list(plan.retry)
        letters = plan.letters + plan.profile_letters
        # Copies and letters are sent at once: the settlement reserve counts them together.
        if plan.requeue and letters and self._pool is not None:
            requeued = self._pool.submit(self._events_queue.requeue, plan.requeue)
            try:
                unparked_ids = self._dead_letters.park(letters)
            finally:
                unqueued_ids = requeued.result()
        else:
            unqueued_ids = self._events_queue.requeue(plan.requeue) if plan.requeue else []
            unparked_ids = self._dead_letters.park(letters) if letters else []
        unqueued, unparked = set(unqueued_ids), set(unparked_ids)
        retry.extend(message_id for message_id, _ in plan.requeue if message_id in unqueued)

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
            erased=len(plan.erased),
            profiles_parked=sum(1 for x in plan.profile_letters if x.message_id not in unparked),
        )
