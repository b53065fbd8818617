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
from typing import TYPE_CHECKING, Any, Final, TypeVar

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.destinations.base import call_budget_ms
from chalicelib.events import Event
from chalicelib.queue import (
    SMALL_ENTRY_BYTES,
    SQS_MESSAGE_BYTES,
    NamedQueue,
    calls_needed,
    message_bytes,
    sqs_calls,
)

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

    def rounds(self, calls: int) -> int:
        """How many waves of `workers` calls it takes to make `calls` calls."""
        return math.ceil(calls / self.workers)

    def settle_ms(self, sends: int, deletes: int, large_bytes: int = 0) -> int:
        """Worst case to send `sends` entries (dead letters and copies, at once; `large_bytes`
        of them in entries over a tenth of a call, see `queue.calls_needed`), then delete
        `deletes` messages (deletes wait for the sends: a message is deleted only once what
        it left behind is safely queued). A delete entry is a receipt handle: ten always
        fit a call."""
        send_calls = calls_needed(sends, large_bytes)
        return (self.rounds(send_calls) + self.rounds(calls_needed(deletes))) * self.call_ms


CONSUMER_SQS = SqsCallLimits()


# The handler's own work after the last destination call (deciding, logging, metrics).
SETTLE_MARGIN_MS = 1000


def reserve_ms(limits: SqsCallLimits, sends: int, deletes: int, large_bytes: int = 0) -> int:
    """The time to keep back from destinations for settling: `sends` entries (dead letters
    and copies, `large_bytes` of them in large entries), then `deletes` deletes, on the
    consumer's SQS client, and the margin."""
    return limits.settle_ms(sends, deletes, large_bytes) + SETTLE_MARGIN_MS


def settlement_reserve_ms(
    batch_size: int,
    destinations: int,
    report_batch_item_failures: bool,
    limits: SqsCallLimits = CONSUMER_SQS,
) -> int:
    """The most time settling a batch can take, for a whole batch owed to every destination.

    A message leaves at most one dead letter or requeued copy per destination, plus one
    routing letter (a destination no longer configured) or decode letter; in the default
    mode every finished message may then need deleting. The messages are the pixel's (each
    letter or copy of one is small: ten always fit a call, `large_entry_bytes`). The
    consumer computes the same bound from the batch in hand, so a smaller batch keeps less
    in reserve, and one carrying large poison (another producer's, up to 1 MiB each) keeps
    more: at most one more round of calls, since Lambda hands a batch of at most 6 MB (its
    invocation payload), whose large entries take at most
    calls_needed(0, 6 MiB + attributes) = 13 calls, fewer than a round's 32. That round
    comes out of the destinations' time, never the settling's: `settlement_problem` counts
    one destination call (at least 12 s) beside the reserve, more than one round (9 s).
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

        listed = list(receipts)
        # DeleteMessageBatch has no byte limit of its own; sized all the same, a receipt
        # handle is small and ten always share a call.
        sizes = [len(r.receipt_handle.encode()) for r in listed]
        return _in_calls(listed, sizes, lambda r: r.message_id, delete_chunk, self._executor)

    def requeue(self, events: Iterable[tuple[str, Event]]) -> list[str]:
        """Send replacement messages (message id, event); return the ids not sent."""
        bodies = [(message_id, event.to_message()) for message_id, event in events]

        def send_chunk(chunk: Sequence[tuple[str, str]]) -> list[BatchResultErrorEntryTypeDef]:
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(chunk)
            ]
            response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            return response.get("Failed", [])

        sizes = [message_bytes(body) for _, body in bodies]
        return _in_calls(bodies, sizes, lambda item: item[0], send_chunk, self._executor)


@dataclass(frozen=True)
class DeadLetter:
    """A message that no retry can fix, with the reason an operator will read."""

    message_id: str
    body: str
    reason: str
    stage: str
    # The event the body carries (as the body names its destinations), when it decoded:
    # what is parked instead of a body too large to carry its reason (`fitted_letter`).
    event: Event | None = None


# A letter's attributes, each value at most so many bytes: the reason, the stage, the
# message id, and the note a body changed to fit carries.
REASON_BYTES: Final = 1024
_ATTRIBUTE_BYTES: Final = {
    "rejection_reason": REASON_BYTES,
    "rejected_at_stage": 64,
    "original_message_id": 128,
    "body_shortened": 64,
}
# The most a letter's attributes take (names, the data type "String", values).
LETTER_ATTRIBUTE_BYTES: Final = sum(
    len(name) + len("String") + cap for name, cap in _ATTRIBUTE_BYTES.items()
)


def large_entry_bytes(body: str) -> int:
    """The bytes a letter carrying `body` counts as large (over a tenth of a call, see
    `queue.calls_needed`), else 0: at most one letter a message carries its body as it came
    (the others, and copies, carry the event re-encoded, which is small)."""
    if len(body) * 4 + LETTER_ATTRIBUTE_BYTES <= SMALL_ENTRY_BYTES:
        return 0  # the usual case, without encoding the body
    size = len(body.encode("utf-8", "surrogatepass")) + LETTER_ATTRIBUTE_BYTES
    return min(size, SQS_MESSAGE_BYTES) if size > SMALL_ENTRY_BYTES else 0


def fitted_letter(letter: DeadLetter) -> tuple[str, dict[str, MessageAttributeValueTypeDef]]:
    """The body and attributes a letter is sent with, within SQS's 1 MiB a message.

    The body goes unchanged when it fits beside its reason. When it does not (a body near
    1 MiB), the reason still goes: a body that decoded is replaced by its event re-encoded
    (what the consumer read of it, well under 100 KB; a replay delivers the same event),
    and one that did not, which is no event at all, is cut to what fits. Either way the
    attribute `body_shortened` says so and how large the body was."""
    values = {
        "rejection_reason": letter.reason,
        "rejected_at_stage": letter.stage,
        "original_message_id": letter.message_id,
    }
    body = letter.body
    if message_bytes(body, _attributes(values)) <= SQS_MESSAGE_BYTES:
        return body, _attributes(values)
    original = len(body.encode("utf-8", "surrogatepass"))
    if letter.event is not None:
        body = letter.event.to_message()
        values["body_shortened"] = f"the event re-encoded, from a body of {original:,} bytes"
    if message_bytes(body, _attributes(values)) > SQS_MESSAGE_BYTES:
        noted = _attributes({**values, "body_shortened": "x" * _ATTRIBUTE_BYTES["body_shortened"]})
        body = _cut(body, SQS_MESSAGE_BYTES - message_bytes("", noted))
        kept = len(body.encode("utf-8", "surrogatepass"))
        values["body_shortened"] = f"cut to its first {kept:,} of {original:,} bytes"
    return body, _attributes(values)


class DeadLetterQueue(NamedQueue):
    """Keeps permanent rejections with the reason as message attributes, the body untouched
    unless it is too large to carry its reason (`fitted_letter`)."""

    def park(self, letters: Iterable[DeadLetter]) -> list[str]:
        """Send letters to the dead-letter queue; return the ids that could not be sent."""
        fitted = [(letter, *fitted_letter(letter)) for letter in letters]

        def send_chunk(
            chunk: Sequence[tuple[DeadLetter, str, dict[str, MessageAttributeValueTypeDef]]],
        ) -> list[BatchResultErrorEntryTypeDef]:
            entries: list[SendMessageBatchRequestEntryTypeDef] = [
                {"Id": str(i), "MessageBody": body, "MessageAttributes": attributes}
                for i, (_, body, attributes) in enumerate(chunk)
            ]
            response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
            return response.get("Failed", [])

        return _in_calls(
            fitted,
            [message_bytes(body, attributes) for _, body, attributes in fitted],
            lambda item: item[0].message_id,
            send_chunk,
            self._executor,
        )


def _in_calls(
    items: Sequence[_Item],
    sizes: Sequence[int],
    message_id: Callable[[_Item], str],
    call: Callable[[Sequence[_Item]], list[BatchResultErrorEntryTypeDef]],
    executor: Executor | None = None,
) -> list[str]:
    """Run an SQS batch call over `items` (each of `sizes` bytes) in calls of at most ten
    entries and 1 MiB (`queue.sqs_calls`), at once on `executor`; return the message ids
    that failed. An item over SQS's 1 MiB a message fails without a call.

    An entry's `Id` is its index in the call. A call that fails as a whole fails every
    item in it; the caller decides what a failure means (retry, or come back later).
    """
    too_large = [i for i, size in enumerate(sizes) if size > SQS_MESSAGE_BYTES]
    fitting = [i for i, size in enumerate(sizes) if size <= SQS_MESSAGE_BYTES]
    chunks = [[items[fitting[i]] for i in call] for call in sqs_calls([sizes[i] for i in fitting])]

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
    return [message_id(items[i]) for i in too_large] + [
        failed for answer in answers for failed in answer
    ]


def _attributes(values: Mapping[str, str]) -> dict[str, MessageAttributeValueTypeDef]:
    """String attributes, each value cut to its cap (and never empty: SQS refuses that)."""
    return {
        name: {"DataType": "String", "StringValue": _cut(value, _ATTRIBUTE_BYTES[name]) or "-"}
        for name, value in values.items()
    }


def _cut(text: str, limit: int) -> str:
    """`text`'s first characters that fit `limit` UTF-8 bytes, a character never split."""
    raw = text.encode("utf-8", "surrogatepass")
    return text if len(raw) <= limit else raw[:limit].decode("utf-8", "ignore")
