"""The pixel's side of SQS: one message per accepted event, and queues known by name.

Queue URLs are looked up by name once per container: the name is what `.chalice/config.json`
and the `@app.on_sqs_message` decorator share, the URL is what the API needs. The consumer's
queue chores (deletes, dead letters, requeued copies) are in `chalicelib.settlement`, off the
pixel's import path: the pixel function never loads them (docs/performance.md, cold start).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib import telemetry
from chalicelib.events import Event

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        MessageAttributeValueTypeDef,
        SendMessageBatchRequestEntryTypeDef,
    )

# SQS's limits, as botocore's sqs model states them (TooManyEntriesInBatchRequest,
# SendMessageBatch, MessageAttributes) and AWS's quotas (docs/delivery.md#sqs-limits):
# entries a SendMessageBatch or DeleteMessageBatch call takes;
SQS_BATCH_LIMIT: Final = 10
# bytes of one message: its body and every attribute's name, type and value;
SQS_MESSAGE_BYTES: Final = 1_048_576
# bytes of one SendMessageBatch: all its messages together.
SQS_BATCH_BYTES: Final = 1_048_576
# An entry of at most this many bytes is small: ten of them always fit one call.
SMALL_ENTRY_BYTES: Final = SQS_BATCH_BYTES // SQS_BATCH_LIMIT
# Why SQS cannot be called at all, and the fix, as the pixel logs it with every hit it
# answers 503 for (plain `chalice local` in a fresh shell: docs/local-development.md).
NO_REGION: Final = (
    "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or a region in your AWS profile"
    " (docs/local-development.md)"
)
NO_CREDENTIALS: Final = (
    "no AWS credentials: set AWS_PROFILE, or AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
    " (docs/local-development.md)"
)


def message_bytes(
    body: str, attributes: Mapping[str, MessageAttributeValueTypeDef] | None = None
) -> int:
    """A message's size as SQS counts it: the body's UTF-8 bytes, and each (string)
    attribute's name, data type and value."""
    size = len(body.encode("utf-8", "surrogatepass"))
    for name, value in (attributes or {}).items():
        size += len(name.encode()) + len(value["DataType"].encode())
        size += len(value.get("StringValue", "").encode("utf-8", "surrogatepass"))
    return size


def sqs_calls(sizes: Sequence[int]) -> list[list[int]]:
    """Indexes of entries (each of `sizes` bytes, none over SQS_MESSAGE_BYTES) packed into
    batch calls of at most SQS_BATCH_LIMIT entries and SQS_BATCH_BYTES: small entries ten
    to a call, larger ones in order by bytes. So n entries, `large` bytes of them in entries
    over SMALL_ENTRY_BYTES, never take more than `calls_needed(n, large)` calls."""
    small = [index for index, size in enumerate(sizes) if size <= SMALL_ENTRY_BYTES]
    calls = [small[i : i + SQS_BATCH_LIMIT] for i in range(0, len(small), SQS_BATCH_LIMIT)]
    current: list[int] = []
    total = 0
    for index, size in enumerate(sizes):
        if size <= SMALL_ENTRY_BYTES:
            continue
        if current and total + size > SQS_BATCH_BYTES:
            calls.append(current)
            current, total = [], 0
        current.append(index)
        total += size
    if current:
        calls.append(current)
    return calls


def calls_needed(entries: int, large_bytes: int = 0) -> int:
    """The most calls `sqs_calls` makes of `entries`, `large_bytes` of them in entries over
    SMALL_ENTRY_BYTES. Small ones: ten to a call. Large ones (more than a tenth of a call
    each, so bytes fill a call before the count): each call but the last, with the first
    entry of the next, holds more than SQS_BATCH_BYTES, so k calls hold more than
    (k - 1) / 2 calls' worth, and k <= ceil(2 x large_bytes / SQS_BATCH_BYTES)."""
    return math.ceil(entries / SQS_BATCH_LIMIT) + math.ceil(2 * large_bytes / SQS_BATCH_BYTES)


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
    problem: str = ""  # why the first failed call failed, for the log


class EventSink(Protocol):
    """What the pixel and the beacon enqueue through: EventQueue, or UnreachableQueue."""

    def send(self, event: Event) -> None: ...

    def send_batch(
        self, events: Sequence[Event], budget_s: float | None = None
    ) -> BatchSendResult: ...


class UnreachableQueue:
    """The pixel's queue when no SQS client can be made (no AWS region anywhere): every
    hit is certainly not recorded, and the reason names the fix."""

    def __init__(self, problem: str) -> None:
        self.problem = problem

    def send(self, event: Event) -> None:
        raise QueueUnavailableError(self.problem)

    def send_batch(self, events: Sequence[Event], budget_s: float | None = None) -> BatchSendResult:
        return BatchSendResult(tuple(range(len(events))), (), self.problem)


class NamedQueue:
    """A queue known by name; its URL is fetched on first use and kept."""

    def __init__(self, client: SQSClient, name: str, executor: Executor | None = None) -> None:
        """`executor`: where batch calls run at once (the consumer shares one pool between
        its queues, chalicelib.settlement); without one they run one after another."""
        self._client = client
        self._name = name
        self._url: str | None = None
        self._executor = executor

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._client.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url


class EventQueue(NamedQueue):
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
        body = event.to_message()
        self._attempts.uncertain = False
        try:
            self._client.send_message(QueueUrl=self.url, MessageBody=body)
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailableError(
                _problem(error), may_have_landed=self._attempts.uncertain
            ) from error
        except Exception as error:  # raised within the call, maybe after SQS took it
            raise QueueUnavailableError(type(error).__name__, may_have_landed=True) from error
        if self._attempts.uncertain:
            with suppress(Exception):  # SQS took it: a counter never fails the send
                telemetry.count("EnqueueRetriedAfterTimeout")

    def send_batch(
        self,
        events: Sequence[Event],
        budget_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> BatchSendResult:
        """Send many events (a beacon's hits), in `SendMessageBatch` calls of at most ten
        messages and 1 MiB (`sqs_calls`), each message exactly what `send` writes; say which
        SQS did not take.

        Calls run one after another. botocore retries a call that failed as a whole (the
        client's attempts); an entry SQS failed on its side (`SenderFault` false) is sent
        once more in a second round. Once a call has failed as a whole after its retries,
        SQS is taken to be down and the calls after it are not made: their events are
        reported as not sent (certainly), which bounds a beacon's wait to about one call's
        worst case instead of fifty. Likewise no call starts once `budget_s` seconds have
        passed (SQS answering, but slowly): the caller's answer must beat Lambda's timeout.

        Ten messages of hits whose query strings are at most 8,192 bytes each
        (beacon.MAX_LINE_BYTES) stay far below 1 MiB, even with JSON's escapes; the calls are
        sized by bytes all the same, so no event given here can make a call too long, and
        one over SQS's 1 MiB a message is reported not sent, without a call.
        """
        started = clock()
        # Every body before the first call: nothing that can fail runs between two calls.
        bodies = [event.to_message() for event in events]
        sizes = [message_bytes(body) for body in bodies]
        failed = [index for index, size in enumerate(sizes) if size > SQS_MESSAGE_BYTES]
        uncertain: list[int] = []
        pending = [index for index, size in enumerate(sizes) if size <= SQS_MESSAGE_BYTES]
        for round_number in range(2):
            retry: list[int] = []
            chunks = [[pending[i] for i in call] for call in sqs_calls([sizes[i] for i in pending])]
            for position, chunk in enumerate(chunks):
                if budget_s is not None and position and clock() - started > budget_s:
                    failed.extend(index for rest in chunks[position:] for index in rest)
                    failed.extend(retry)
                    return BatchSendResult(tuple(sorted(failed)), tuple(sorted(uncertain)))
                self._attempts.uncertain = False
                entries: list[SendMessageBatchRequestEntryTypeDef] = [
                    {"Id": str(n), "MessageBody": bodies[index]} for n, index in enumerate(chunk)
                ]
                try:
                    response = self._client.send_message_batch(QueueUrl=self.url, Entries=entries)
                except Exception as call_error:
                    failed.extend(chunk)
                    # Raised within the call but not by botocore: SQS may hold the chunk.
                    botocore = isinstance(call_error, BotoCoreError | ClientError)
                    if self._attempts.uncertain or not botocore:
                        uncertain.extend(chunk)
                    failed.extend(index for rest in chunks[position + 1 :] for index in rest)
                    failed.extend(retry)
                    return BatchSendResult(
                        tuple(sorted(failed)), tuple(sorted(uncertain)), _problem(call_error)
                    )
                if self._attempts.uncertain:
                    with suppress(Exception):  # SQS took them: never fails the send
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


def _problem(error: Exception) -> str:
    """What a failed call says in the log: the fix when it is the caller's setup."""
    if isinstance(error, NoCredentialsError):
        return NO_CREDENTIALS
    return type(error).__name__
