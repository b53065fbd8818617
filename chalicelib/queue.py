"""The SQS side of the pipeline: the pixel's send, and the consumer's queue chores.

Queue URLs are looked up by name once per container: the name is what `.chalice/config.json`
and the `@app.on_sqs_message` decorator share, the URL is what the API needs.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib import telemetry
from chalicelib.events import Event

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        BatchResultErrorEntryTypeDef,
        DeleteMessageBatchRequestEntryTypeDef,
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

SQS_BATCH_LIMIT = 10
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


class QueueUnavailableError(RuntimeError):
    """When SQS did not take a message after the client's bounded retries.

    `may_have_landed`: an attempt was sent and its answer never came (a read timeout, a
    dropped connection) or was a server error, so SQS may hold the message anyway. False
    only when every attempt certainly failed (no connection, or SQS refused it).
    """

    def __init__(self, reason: str, may_have_landed: bool = False) -> None:
        super().__init__(reason)
        self.may_have_landed = may_have_landed


@dataclass(frozen=True)
class BatchSendResult:
    """What `EventQueue.send_batch` could not send, by index into the events given:
    `failed`, and among them `may_have_landed` (a call whose answer never came, or was a
    server error: SQS may hold those messages)."""

    failed: tuple[int, ...] = ()
    may_have_landed: tuple[int, ...] = ()


class _NamedQueue:
    """A queue known by name; its URL is fetched on first use and kept."""

    def __init__(self, client: SQSClient, name: str, executor: Executor | None = None) -> None:
        """`executor`: where batch calls run at once (the consumer shares one pool between
        its queues); without one they run one after another."""
        self._client = client
        self._name = name
        self._url: str | None = None
        self._executor = executor

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._client.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url


class EventQueue(_NamedQueue):
    """Where the pixel puts accepted events: one message per event.

    botocore retries a `SendMessage` whose answer is late, and SQS may have taken the first
    attempt: one hit can then be two or three messages with the same event id (the consumer
    delivers it once, chalicelib/dedupe.py). Each attempt is watched to tell the pixel's
    answer whether a failed send may still have landed, and to count the successes that
    may have left a copy behind (`EnqueueRetriedAfterTimeout`).
    """

    def __init__(self, client: SQSClient, name: str) -> None:
        super().__init__(client, name)
        self._attempts = threading.local()
        for operation in ("SendMessage", "SendMessageBatch"):
            client.meta.events.register(
                f"needs-retry.sqs.{operation}",
                self._watch_attempt,
                unique_id=f"pixel-relay-{operation}-{id(self)}",
            )

    def send(self, event: Event) -> None:
        self._attempts.uncertain = False
        try:
            self._client.send_message(QueueUrl=self.url, MessageBody=event.to_message())
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailableError(
                type(error).__name__, may_have_landed=self._attempts.uncertain
            ) from error
        if self._attempts.uncertain:
            telemetry.count("EnqueueRetriedAfterTimeout")

    def send_batch(
        self,
        events: Sequence[Event],
        budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> BatchSendResult:
        """Send many events (a beacon's hits), ten to a `SendMessageBatch` call, each message
        exactly what `send` writes; say which SQS did not take.

        Calls run one after another. botocore retries a call that failed as a whole (the
        client's attempts); an entry SQS failed on its side (`SenderFault` false) is sent
        once more in a second round. Once a call has failed as a whole after its retries,
        SQS is taken to be down and the calls after it are not made: their events are
        reported as not sent (certainly), which bounds a beacon's wait to about one call's
        worst case instead of fifty. Likewise no call starts once `budget_s` seconds have
        passed (SQS answering, but slowly): the caller's answer must beat Lambda's timeout.

        A call carries at most 1 MiB: ten messages of hits whose query strings are at most
        8,192 bytes each (beacon.MAX_LINE_BYTES) stay far below it, even with JSON's escapes.
        """
        started = clock()
        failed: list[int] = []
        uncertain: list[int] = []
        pending = list(range(len(events)))
        for round_number in range(2):
            retry: list[int] = []
            chunks = [
                pending[i : i + SQS_BATCH_LIMIT] for i in range(0, len(pending), SQS_BATCH_LIMIT)
            ]
            for position, chunk in enumerate(chunks):
                if budget_s is not None and position and clock() - started > budget_s:
                    failed.extend(index for rest in chunks[position:] for index in rest)
                    failed.extend(retry)
                    return BatchSendResult(tuple(sorted(failed)), tuple(sorted(uncertain)))
                self._attempts.uncertain = False
                try:
                    entries: list[SendMessageBatchRequestEntryTypeDef] = [
                        {"Id": str(n), "MessageBody": events[index].to_message()}
                        for n, index in enumerate(chunk)
                    ]
                    response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
                except (BotoCoreError, ClientError):
                    failed.extend(chunk)
                    if self._attempts.uncertain:
                        uncertain.extend(chunk)
                    failed.extend(index for rest in chunks[position + 1 :] for index in rest)
                    failed.extend(retry)
                    return BatchSendResult(tuple(sorted(failed)), tuple(sorted(uncertain)))
                if self._attempts.uncertain:
                    telemetry.count("EnqueueRetriedAfterTimeout", len(chunk))
                for error in response.get("Failed", []):
                    index = chunk[int(error["Id"])]
                    if error.get("SenderFault") or round_number == 1:
                        failed.append(index)  # an entry SQS answered for: it did not land
                    else:
                        retry.append(index)
            pending = retry
            if not pending:
                break
        return BatchSendResult(tuple(sorted(failed)), tuple(sorted(uncertain)))

    def _watch_attempt(
        self, response: Any = None, caught_exception: Exception | None = None, **_: Any
    ) -> None:
        """botocore's hook after each attempt: note one whose fate SQS never told us."""
        if caught_exception is not None:
            certain = isinstance(caught_exception, BotoConnectionError)  # never connected
        else:
            status = response[0].status_code if response else 0
            certain = status < 500
        if not certain:
            self._attempts.uncertain = True


@dataclass(frozen=True)
class Receipt:
    """Enough of an SQS record to delete it: its id and receipt handle."""

    message_id: str
    receipt_handle: str


class BatchQueue(_NamedQueue):
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


class DeadLetterQueue(_NamedQueue):
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
