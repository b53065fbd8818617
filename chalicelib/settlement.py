"""Settling a batch in time: the consumer's queue chores (deleting finished messages, parking
dead letters, requeueing copies), each within a known worst case, and the time they need
(`settlement_reserve_ms`, and `settlement_problem` for deploy preflight).

Kept apart from `chalicelib.queue` (the pixel's send) so that the pixel function never
imports them: each frozen dataclass costs about half a millisecond of cold start to define.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.destinations.base import call_budget_ms
from chalicelib.events import Event
from chalicelib.queue import SQS_BATCH_LIMIT, NamedQueue

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mypy_boto3_sqs.type_defs import (
        BatchResultErrorEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

_Item = TypeVar("_Item")


@dataclass(frozen=True)
class SqsCallLimits:
    """The consumer's SQS client, sized so that settling a batch has a known worst case.

    Settling (deleting finished messages, parking dead letters, requeueing copies) must end
    before Lambda's deadline: a finished message left undeleted is delivered again. botocore's
    defaults (60 s connect, 60 s read, 3 attempts) make one call's worst case 6 minutes;
    SQS answers in tens of milliseconds, so 1 s to connect and 3 s to read (2 attempts) still
    leave room for a slow answer while bounding one call to `call_ms`. `workers` calls run at
    once: a batch of 1,000 needs 100 deletes, far too many to run one after another.
    """

    connect_timeout_s: int = 1
    read_timeout_s: int = 3
    attempts: int = 2
    workers: int = 32

    def botocore_config(self) -> Any:
        from botocore.config import Config

        return Config(
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
            retries={"mode": "standard", "total_max_attempts": self.attempts},
            max_pool_connections=self.workers,
        )

    @property
    def call_ms(self) -> int:
        """One call's worst case: every attempt waits out both timeouts, and the standard
        retry mode sleeps at most 2**i seconds before retry i+1 (SQS sends no retry-after)."""
        waits = self.attempts * (self.connect_timeout_s + self.read_timeout_s)
        backoff = (1 << (self.attempts - 1)) - 1  # 1 + 2 + ... + 2**(attempts - 2)
        return (waits + backoff) * 1000

    def rounds(self, entries: int) -> int:
        """How many waves of `workers` calls it takes to send `entries` ten to a call."""
        return math.ceil(math.ceil(entries / SQS_BATCH_LIMIT) / self.workers)

    def settle_ms(self, sends: int, deletes: int) -> int:
        """Worst case to send `sends` entries (dead letters and copies, at once), then delete
        `deletes` messages (deletes wait for the sends: a message is deleted only once what
        it left behind is safely queued)."""
        return (self.rounds(sends) + self.rounds(deletes)) * self.call_ms


CONSUMER_SQS = SqsCallLimits()


# The handler's own work after the last destination call (deciding, logging, metrics).
SETTLE_MARGIN_MS = 1000


def reserve_ms(limits: SqsCallLimits, sends: int, deletes: int) -> int:
    """The time to keep back from destinations for settling: `sends` entries (dead letters
    and copies), then `deletes` deletes, on the consumer's SQS client, and the margin."""
    return limits.settle_ms(sends, deletes) + SETTLE_MARGIN_MS


def settlement_reserve_ms(
    batch_size: int,
    destinations: int,
    report_batch_item_failures: bool,
    limits: SqsCallLimits = CONSUMER_SQS,
) -> int:
    """The most time settling a batch can take, for a whole batch owed to every destination.

    A message leaves at most one dead letter or requeued copy per destination, plus one
    routing letter (a destination no longer configured) or decode letter; in the default
    mode every finished message may then need deleting. The consumer computes the same
    bound from the batch in hand, so a smaller batch keeps less in reserve.
    """
    deletes = 0 if report_batch_item_failures else batch_size
    return reserve_ms(limits, batch_size * (destinations + 1), deletes)


def settlement_problem(
    batch_size: int,
    destinations: int,
    report_batch_item_failures: bool,
    delivery_timeout_seconds: int,
    function_timeout_seconds: int,
) -> str | None:
    """Why a full batch could never be delivered and settled within the consumer's Lambda
    timeout (the reserve plus one destination call's worst case), or None if it can."""

    def needed_ms(size: int) -> int:
        reserve = settlement_reserve_ms(size, destinations, report_batch_item_failures)
        return reserve + call_budget_ms(delivery_timeout_seconds)

    if needed_ms(batch_size) <= function_timeout_seconds * 1000:
        return None
    reserve = settlement_reserve_ms(batch_size, destinations, report_batch_item_failures)
    fitting = next(
        (
            size
            for size in range(batch_size - 1, 0, -1)
            if needed_ms(size) <= function_timeout_seconds * 1000
        ),
        0,
    )
    advice = (
        f"lower BATCH_SIZE to {fitting} or less, or raise"
        if fitting
        else "lower DELIVERY_TIMEOUT_SECONDS or raise"
    )
    return (
        f"BATCH_SIZE={batch_size} with {destinations} destination(s) needs a consumer timeout "
        f"of at least {math.ceil(needed_ms(batch_size) / 1000)} s: settling the batch with SQS "
        f"may take {reserve / 1000:g} s "
        f"and one destination call {call_budget_ms(delivery_timeout_seconds) / 1000:g} s "
        f"(DELIVERY_TIMEOUT_SECONDS={delivery_timeout_seconds}), but the deliver function's "
        f"lambda_timeout is {function_timeout_seconds} s; {advice} lambda_timeout"
    )


@dataclass(frozen=True)
class Receipt:
    """Enough of an SQS record to delete it: its id and receipt handle."""

    message_id: str
    receipt_handle: str


class BatchQueue(NamedQueue):
    """The consumer's own queue: explicit deletes when Lambda must not delete for us."""

    def delete(self, receipts: Iterable[Receipt]) -> list[str]:
        """Delete messages; return the ids SQS did not delete (they will come back)."""

        def delete_chunk(chunk: Sequence[Receipt]) -> list[BatchResultErrorEntryTypeDef]:
            entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": r.receipt_handle} for i, r in enumerate(chunk)
            ]
            response = self._client.delete_message_batch(QueueUrl=self.url, Entries=entries)
            return response.get("Failed", [])

        return _in_chunks(list(receipts), lambda r: r.message_id, delete_chunk, self._executor)

    def requeue(self, events: Iterable[tuple[str, Event]]) -> list[str]:
        """Send replacement messages (message id, event); return the ids not sent."""

        def send_chunk(chunk: Sequence[tuple[str, Event]]) -> list[BatchResultErrorEntryTypeDef]:
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": event.to_message()}
                for i, (_, event) in enumerate(chunk)
            ]
            response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            return response.get("Failed", [])

        return _in_chunks(list(events), lambda item: item[0], send_chunk, self._executor)


@dataclass(frozen=True)
class DeadLetter:
    """A message that no retry can fix, with the reason an operator will read."""

    message_id: str
    body: str
    reason: str
    stage: str


class DeadLetterQueue(NamedQueue):
    """Keeps permanent rejections, body untouched, with the reason as message attributes."""

    def park(self, letters: Iterable[DeadLetter]) -> list[str]:
        """Send letters to the dead-letter queue; return the ids that could not be sent."""

        def send_chunk(chunk: Sequence[DeadLetter]) -> list[BatchResultErrorEntryTypeDef]:
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {
                    "Id": str(i),
                    "MessageBody": letter.body,
                    "MessageAttributes": _attributes(
                        {
                            "rejection_reason": letter.reason[:1024],
                            "rejected_at_stage": letter.stage,
                            "original_message_id": letter.message_id,
                        }
                    ),
                }
                for i, letter in enumerate(chunk)
            ]
            response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            return response.get("Failed", [])

        return _in_chunks(
            list(letters), lambda letter: letter.message_id, send_chunk, self._executor
        )


def _in_chunks(
    items: Sequence[_Item],
    message_id: Callable[[_Item], str],
    call: Callable[[Sequence[_Item]], list[BatchResultErrorEntryTypeDef]],
    executor: Executor | None = None,
) -> list[str]:
    """Run an SQS batch call ten items at a time (at once on `executor`); return the message
    ids that failed.

    An entry's `Id` is its index in the chunk. A call that fails as a whole fails every
    item in it; the caller decides what a failure means (retry, or come back later).
    """
    chunks = [items[i : i + SQS_BATCH_LIMIT] for i in range(0, len(items), SQS_BATCH_LIMIT)]

    def failures(chunk: Sequence[_Item]) -> list[str]:
        try:
            errors = call(chunk)
        except (BotoCoreError, ClientError):
            return [message_id(item) for item in chunk]
        return [message_id(chunk[int(error["Id"])]) for error in errors]

    answers: Iterable[list[str]]
    if executor is None or len(chunks) < 2:
        answers = map(failures, chunks)
    else:
        answers = executor.map(failures, chunks)
    return [failed for answer in answers for failed in answer]


def _attributes(values: Mapping[str, str]) -> dict[str, MessageAttributeValueTypeDef]:
    return {
        name: {"DataType": "String", "StringValue": value or "-"} for name, value in values.items()
    }
