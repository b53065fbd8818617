"""A local stand-in for Lambda's SQS event source mapping.

`chalice local` never runs `@app.on_sqs_message` handlers, and moto runs no Lambda for them,
so the local stack and the tests poll the queue with this instead. It reproduces the parts of
Lambda's behaviour that decide whether messages are lost, duplicated or delayed:

- a batch is up to `batch_size` messages, received in chunks of ten as Lambda does, gathered
  for up to `batching_window_seconds` after the first one arrives, and cut before the event
  would exceed Lambda's 6 MB invocation payload;
- records have Lambda's shape (system attributes, `messageAttributes` in lower camel case);
- the handler raises: every message stays on the queue and comes back after the visibility
  timeout (here at once when `redeliver_at_once`, for fast tests);
- the handler returns: Lambda deletes the whole batch, unless the mapping has
  `ReportBatchItemFailures` and the answer lists `batchItemFailures`, which stay; an answer
  Lambda cannot use (an unknown or empty `itemIdentifier`, a malformed answer) fails the
  whole batch;
- after `maxReceiveCount` receives, the queue's redrive policy (SQS, or moto) moves a message
  to the dead-letter queue on the next receive: nothing here needs to do it.

Unlike Lambda it does not insist on a window of at least 1 s for a batch size over 10, so
tests can take large batches at once. Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import base64
import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageAttributeValueOutputTypeDef, MessageTypeDef

Handler = Callable[[dict[str, Any]], Any]

# Lambda's synchronous invocation payload quota, which caps an SQS batch.
MAX_PAYLOAD_BYTES: Final = 6 * 1024 * 1024
# Lambda's limits on MaximumBatchingWindowInSeconds and BatchSize for SQS.
MAX_BATCHING_WINDOW_SECONDS: Final = 300
MAX_BATCH_SIZE: Final = 10_000
# SQS caps a long poll at 20 s and a receive at 10 messages.
MAX_WAIT_SECONDS: Final = 20
MAX_MESSAGES_PER_RECEIVE: Final = 10
# `run` backs off this long after a failed poll, doubling up to the maximum.
FIRST_BACKOFF_SECONDS: Final = 0.5
MAX_BACKOFF_SECONDS: Final = 8.0

_EMPTY_EVENT_BYTES: Final = len(b'{"Records":[]}')

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PollResult:
    """What one poll did: messages received, deleted by the mapping, and left to retry.

    After a failed batch (the handler raised, or answered what Lambda cannot use) the mapping
    deletes nothing and `left` is the whole batch, as Lambda sees it; messages the handler
    deleted itself are gone all the same. `error` says why the batch failed, or (from `run`
    only, with nothing received) why polling failed.
    """

    received: int
    deleted: int
    left: int
    error: str | None = None


def _base64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def lambda_message_attribute(value: MessageAttributeValueOutputTypeDef) -> dict[str, Any]:
    """A message attribute as Lambda hands it over: lower camel case, binary as base64, and
    both list fields always present (SQS has never filled them)."""
    converted: dict[str, Any] = {}
    if "StringValue" in value:
        converted["stringValue"] = value["StringValue"]
    if "BinaryValue" in value:
        converted["binaryValue"] = _base64(value["BinaryValue"])
    converted["stringListValues"] = list(value.get("StringListValues", []))
    converted["binaryListValues"] = [_base64(v) for v in value.get("BinaryListValues", [])]
    converted["dataType"] = value["DataType"]
    return converted


def lambda_sqs_record(message: MessageTypeDef, queue_arn: str) -> dict[str, Any]:
    """One record of the event Lambda hands an SQS-triggered function."""
    region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1"
    record: dict[str, Any] = {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": dict(message.get("Attributes", {})),
        "messageAttributes": {
            name: lambda_message_attribute(value)
            for name, value in message.get("MessageAttributes", {}).items()
        },
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }
    if "MD5OfMessageAttributes" in message:
        record["md5OfMessageAttributes"] = message["MD5OfMessageAttributes"]
    return record


@dataclass(frozen=True)
class _Received:
    """A received message with its record, built once to measure the payload it adds."""

    message: MessageTypeDef
    record: dict[str, Any]
    size: int


class InvalidBatchResponseError(ValueError):
    """The handler's answer is one Lambda treats as a failure of the whole batch."""


class LocalEventSourceMapping:
    """Polls one queue and invokes a handler the way Lambda's event source mapping does."""

    def __init__(
        self,
        sqs: SQSClient,
        queue_url: str,
        handler: Handler,
        batch_size: int = 10,
        report_batch_item_failures: bool = False,
        redeliver_at_once: bool = True,
        batching_window_seconds: float = 0,
        max_payload_bytes: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        # Lambda refuses these settings when the mapping is created: fail as early.
        if not 1 <= batch_size <= MAX_BATCH_SIZE:
            raise ValueError(f"batch_size must be 1 to {MAX_BATCH_SIZE}, not {batch_size}")
        if not 0 <= batching_window_seconds <= MAX_BATCHING_WINDOW_SECONDS:
            raise ValueError(
                f"batching_window_seconds must be 0 to {MAX_BATCHING_WINDOW_SECONDS},"
                f" not {batching_window_seconds}"
            )
        if queue_url.endswith(".fifo") and (batching_window_seconds or batch_size > 10):
            raise ValueError("a FIFO queue takes no batching window and at most 10 a batch")
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._batch_size = batch_size
        self._report_batch_item_failures = report_batch_item_failures
        self._redeliver_at_once = redeliver_at_once
        self._window = float(batching_window_seconds)
        self._max_payload_bytes = max_payload_bytes
        self._queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        # Received but not yet handed over: what did not fit the last batch's payload.
        self._carried: list[_Received] = []
        self._never_stop = threading.Event()

    def poll(self, wait_seconds: int = 0) -> PollResult:
        """Gather one batch and invoke the handler once (not at all if nothing arrives).

        `wait_seconds` is how long to long-poll for the first message; the batching window
        then runs from its arrival. SQS errors propagate.
        """
        return self._poll(wait_seconds, self._never_stop, MAX_WAIT_SECONDS)

    def drain(self, max_polls: int = 1000) -> list[PollResult]:
        """Poll until a poll receives nothing; returns every poll that received messages."""
        results = []
        for _ in range(max_polls):
            result = self.poll()
            if not result.received:
                break
            results.append(result)
        return results

    def run(
        self,
        stop: threading.Event,
        on_poll: Callable[[PollResult], None] | None = None,
        wait_seconds: int = 1,
    ) -> None:
        """Poll until `stop` is set, as a deployed mapping would, for the local stack.

        Each SQS call long-polls at most `wait_seconds`, so a stop is seen within about that
        (plus a running handler), and a batch being gathered is handed over, not stranded.
        `on_poll` sees every poll that received something or failed. A failed poll (SQS down,
        throttled) is logged and retried after a growing pause; handler errors only fail
        their batch, as in Lambda.
        """
        wait_seconds = max(1, wait_seconds)  # a zero wait would poll SQS in a busy loop
        backoff = FIRST_BACKOFF_SECONDS
        try:
            while not stop.is_set():
                pause = 0.0
                try:
                    result = self._poll(wait_seconds, stop, wait_seconds)
                except Exception as error:
                    log.warning("polling %s failed: %s", self._queue_url, error)
                    result = PollResult(0, 0, 0, f"{type(error).__name__}: {error}")
                    pause, backoff = backoff, min(backoff * 2, MAX_BACKOFF_SECONDS)
                else:
                    backoff = FIRST_BACKOFF_SECONDS
                if on_poll is not None and (result.received or result.error is not None):
                    try:
                        on_poll(result)
                    except Exception:
                        log.exception("on_poll failed; polling goes on")
                if pause:
                    stop.wait(pause)
        finally:
            # Messages held back for the next batch would otherwise wait out their timeout.
            carried, self._carried = self._carried, []
            try:
                self._release([item.message for item in carried])
            except Exception as error:
                log.warning("could not release %d carried messages: %s", len(carried), error)

    def _poll(self, wait_seconds: float, stop: threading.Event, longest_call: int) -> PollResult:
        batch = self._gather(wait_seconds, stop, longest_call)
        if not batch:
            return PollResult(received=0, deleted=0, left=0)
        messages = [item.message for item in batch]
        try:
            answer = self._handler({"Records": [item.record for item in batch]})
        except Exception as error:  # Lambda treats any exception as a failed batch
            return self._fail(messages, f"{type(error).__name__}: {error}")
        try:
            json.dumps(answer)  # the runtime must serialise the answer, or the call fails
        except (TypeError, ValueError) as error:
            return self._fail(messages, f"Runtime.MarshalError: {error}")
        try:
            keep = self._reported_failures(answer, {m["MessageId"] for m in messages})
        except InvalidBatchResponseError as error:
            return self._fail(messages, f"InvalidBatchResponse: {error}")
        to_delete = [m for m in messages if m["MessageId"] not in keep]
        self._delete(to_delete)
        left = [m for m in messages if m["MessageId"] in keep]
        if self._redeliver_at_once:
            self._release(left)
        return PollResult(len(messages), len(to_delete), len(left))

    def _fail(self, messages: Sequence[MessageTypeDef], error: str) -> PollResult:
        if self._redeliver_at_once:
            self._release(messages)
        return PollResult(len(messages), 0, len(messages), error)

    def _reported_failures(self, answer: Any, batch_ids: set[str]) -> set[str]:
        """The message ids to keep, by Lambda's documented rules for partial batch responses.

        Without ReportBatchItemFailures Lambda ignores the answer. With it, no answer, no
        list or an empty one is complete success; anything it cannot match to the batch is
        complete failure (raised as InvalidBatchResponseError).
        """
        if not self._report_batch_item_failures or answer is None:
            return set()
        if not isinstance(answer, dict):
            raise InvalidBatchResponseError(
                f"the answer is a {type(answer).__name__}, not an object"
            )
        failures = answer.get("batchItemFailures")
        if failures is None:
            return set()
        if not isinstance(failures, list):
            raise InvalidBatchResponseError("batchItemFailures is not a list")
        keep = set()
        for item in failures:
            identifier = item.get("itemIdentifier") if isinstance(item, dict) else None
            if not isinstance(identifier, str) or not identifier:
                raise InvalidBatchResponseError(f"no itemIdentifier in batch item failure {item!r}")
            if identifier not in batch_ids:
                raise InvalidBatchResponseError(
                    f"itemIdentifier {identifier!r} is not in the batch"
                )
            keep.add(identifier)
        return keep

    def _gather(
        self, wait_seconds: float, stop: threading.Event, longest_call: int
    ) -> list[_Received]:
        """Receive until the batch is full, would pass the payload quota, or its window ends.

        Long polls only: before the first message each call waits for it (rounded up to whole
        seconds, as SQS takes them); within the window each call waits at most what is left
        of it, rounded down, and a last fraction of a second is slept off before one final
        look, so the window is kept without busy polling.
        """
        batch, self._carried = self._carried, []
        size = _EMPTY_EVENT_BYTES + sum(item.size for item in batch) + max(0, len(batch) - 1)
        deadline = time.monotonic() + (self._window if batch else wait_seconds)
        try:
            while len(batch) < self._batch_size and not stop.is_set():
                remaining = deadline - time.monotonic()
                if batch:
                    wait = min(longest_call, MAX_WAIT_SECONDS, max(0, math.floor(remaining)))
                    if not wait and remaining > 0 and stop.wait(remaining):
                        break
                else:
                    wait = min(longest_call, MAX_WAIT_SECONDS, max(0, math.ceil(remaining)))
                received = self._receive(wait, self._batch_size - len(batch))
                if received and not batch:
                    deadline = time.monotonic() + self._window
                for message in received:
                    record = lambda_sqs_record(message, self._queue_arn)
                    item = _Received(message, record, _json_size(record))
                    added = item.size + (1 if batch else 0)
                    if self._carried or (batch and size + added > self._max_payload_bytes):
                        self._carried.append(item)
                    else:
                        batch.append(item)
                        size += added
                if self._carried:
                    break
                # Window 0: take what is there now; otherwise stop when the window is over.
                if time.monotonic() >= deadline and (self._window > 0 or not received):
                    break
        except BaseException:
            self._carried[:0] = batch  # handed over by the next poll, not stranded
            raise
        return batch

    def _receive(self, wait_seconds: int, wanted: int) -> list[MessageTypeDef]:
        response = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(MAX_MESSAGES_PER_RECEIVE, wanted),
            WaitTimeSeconds=wait_seconds,
            # AttributeNames is deprecated for message attributes; moto reads both.
            MessageSystemAttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return response.get("Messages", [])

    def _delete(self, messages: Sequence[MessageTypeDef]) -> None:
        for start in range(0, len(messages), MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + MAX_MESSAGES_PER_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )

    def _release(self, messages: Sequence[MessageTypeDef]) -> None:
        # Messages the handler deleted itself answer "receipt handle invalid": ignored.
        for start in range(0, len(messages), MAX_MESSAGES_PER_RECEIVE):
            chunk = messages[start : start + MAX_MESSAGES_PER_RECEIVE]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )


def _json_size(record: dict[str, Any]) -> int:
    return len(json.dumps(record, separators=(",", ":"), ensure_ascii=False).encode())
