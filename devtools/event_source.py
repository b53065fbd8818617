"""A local stand-in for Lambda's SQS event source mapping.

`chalice local` never runs `@app.on_sqs_message` handlers, and moto runs no Lambda for them,
so the local stack and the tests poll the queue with this instead. It reproduces the parts of
Lambda's behaviour that decide whether messages are lost or duplicated:

- a batch is up to `batch_size` messages, received in chunks of ten as Lambda does;
- the handler raises: every message stays on the queue and comes back (here at once when
  `redeliver_at_once`, instead of after the visibility timeout);
- the handler returns: Lambda deletes the whole batch, unless the mapping has
  `ReportBatchItemFailures` and the answer lists `batchItemFailures`, which stay.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

Handler = Callable[[dict[str, Any]], Any]


@dataclass(frozen=True)
class PollResult:
    """What one poll did: messages received, deleted by the mapping, and left to retry.

    After a handler error the mapping deletes nothing and `left` is the whole batch, as
    Lambda sees it; messages the handler deleted itself are gone all the same.
    """

    received: int
    deleted: int
    left: int
    error: str | None = None


def lambda_sqs_event(messages: Sequence[MessageTypeDef], queue_arn: str) -> dict[str, Any]:
    """The event Lambda hands an SQS-triggered function, built from received messages."""
    region = queue_arn.split(":")[3] if queue_arn.count(":") >= 5 else "us-east-1"
    return {
        "Records": [
            {
                "messageId": message["MessageId"],
                "receiptHandle": message["ReceiptHandle"],
                "body": message["Body"],
                "attributes": dict(message.get("Attributes", {})),
                "messageAttributes": {},
                "md5OfBody": message.get("MD5OfBody", ""),
                "eventSource": "aws:sqs",
                "eventSourceARN": queue_arn,
                "awsRegion": region,
            }
            for message in messages
        ]
    }


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
    ) -> None:
        self._sqs = sqs
        self._queue_url = queue_url
        self._handler = handler
        self._batch_size = batch_size
        self._report_batch_item_failures = report_batch_item_failures
        self._redeliver_at_once = redeliver_at_once
        self._queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]

    def poll(self, wait_seconds: int = 0) -> PollResult:
        """Receive one batch and invoke the handler once (or not at all if the queue is empty)."""
        messages = self._receive(wait_seconds)
        if not messages:
            return PollResult(received=0, deleted=0, left=0)
        try:
            answer = self._handler(lambda_sqs_event(messages, self._queue_arn))
        except Exception as error:  # Lambda treats any exception as a failed batch
            if self._redeliver_at_once:
                self._release(messages)
            return PollResult(len(messages), 0, len(messages), f"{type(error).__name__}: {error}")
        keep = self._reported_failures(answer)
        to_delete = [m for m in messages if m["MessageId"] not in keep]
        self._delete(to_delete)
        left = [m for m in messages if m["MessageId"] in keep]
        if self._redeliver_at_once:
            self._release(left)
        return PollResult(len(messages), len(to_delete), len(left))

    def drain(self, max_polls: int = 1000) -> list[PollResult]:
        """Poll until a poll receives nothing; returns every poll that received messages."""
        results = []
        for _ in range(max_polls):
            result = self.poll()
            if not result.received:
                break
            results.append(result)
        return results

    def _reported_failures(self, answer: Any) -> set[str]:
        if not self._report_batch_item_failures or not isinstance(answer, dict):
            return set()
        failures = answer.get("batchItemFailures") or []
        return {str(item.get("itemIdentifier")) for item in failures}

    def _receive(self, wait_seconds: int) -> list[MessageTypeDef]:
        messages: list[MessageTypeDef] = []
        while len(messages) < self._batch_size:
            response = self._sqs.receive_message(
                QueueUrl=self._queue_url,
                MaxNumberOfMessages=min(10, self._batch_size - len(messages)),
                WaitTimeSeconds=wait_seconds if not messages else 0,
                AttributeNames=["All"],
            )
            received = response.get("Messages", [])
            if not received:
                break
            messages.extend(received)
        return messages

    def _delete(self, messages: Sequence[MessageTypeDef]) -> None:
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(chunk)
                ],
            )

    def _release(self, messages: Sequence[MessageTypeDef]) -> None:
        # Messages the handler deleted itself answer "receipt handle invalid": ignored.
        for start in range(0, len(messages), 10):
            chunk = messages[start : start + 10]
            self._sqs.change_message_visibility_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"], "VisibilityTimeout": 0}
                    for i, m in enumerate(chunk)
                ],
            )
