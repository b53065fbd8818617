"""Reading the dead-letter queue: every message once, as a `DeadLetter`, hidden for the hold
while the scan runs and released when it ends; `Selection`, the messages a command acts on;
and the progress line a long scan prints."""

from __future__ import annotations

import json
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.events import Event, MessageError

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import (
        ChangeMessageVisibilityBatchRequestEntryTypeDef,
        MessageTypeDef,
    )

BATCH: Final = 10  # SQS's batch limit
DEFAULT_HOLD_SECONDS: Final = 300
WAIT_SECONDS: Final = 1
# A long poll that returns nothing has asked every SQS server: the queue has no visible
# message left. Batches of only already-seen messages (a hold ran out) end a scan too.
OLD_ONLY_RECEIVES_TO_STOP: Final = 3
REDRIVE: Final = "redrive"  # messages the redrive policy moved carry no attributes
NOT_AN_EVENT: Final = "(not an event)"


@dataclass(frozen=True)
class DeadLetter:
    """One dead-letter message as an operator reads it."""

    message_id: str
    receipt_handle: str
    body: str
    reason: str
    rejected_at: str
    original_message_id: str
    event_type: str
    sent_at: datetime

    @classmethod
    def from_message(cls, message: MessageTypeDef) -> DeadLetter:
        attributes = {
            name: value.get("StringValue", "")
            for name, value in message.get("MessageAttributes", {}).items()
        }
        body = message.get("Body", "")
        sent_ms = int(message.get("Attributes", {}).get("SentTimestamp", "0"))
        return cls(
            message_id=message.get("MessageId", ""),
            receipt_handle=message.get("ReceiptHandle", ""),
            body=body,
            reason=attributes.get(
                "rejection_reason",
                "moved by the redrive policy after repeated failures (see the consumer's"
                " 'events will be retried' log lines)",
            ),
            rejected_at=attributes.get("rejected_at_stage", REDRIVE),
            original_message_id=attributes.get("original_message_id", ""),
            event_type=_event_type(body),
            sent_at=datetime.fromtimestamp(sent_ms / 1000, UTC),
        )

    def replayable(self) -> bool:
        """Whether the consumer would read the body as an event (else it is parked again)."""
        try:
            Event.from_message(self.body)
        except MessageError:
            return False
        return True


def _event_type(body: str) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return NOT_AN_EVENT
    value = document.get("event_type") if isinstance(document, dict) else None
    return value if isinstance(value, str) else NOT_AN_EVENT


@dataclass(frozen=True)
class Selection:
    """Which dead letters a command acts on; empty criteria select everything."""

    reason_contains: tuple[str, ...] = ()
    event_types: frozenset[str] = frozenset()
    rejected_at: frozenset[str] = frozenset()

    def matches(self, letter: DeadLetter) -> bool:
        reason = letter.reason.lower()
        if self.reason_contains and not any(t.lower() in reason for t in self.reason_contains):
            return False
        if self.event_types and letter.event_type not in self.event_types:
            return False
        return not self.rejected_at or letter.rejected_at in self.rejected_at

    def describe(self) -> str:
        parts = [f"reason contains {t!r}" for t in self.reason_contains]
        if self.event_types:
            parts.append("event type in " + ", ".join(sorted(self.event_types)))
        if self.rejected_at:
            parts.append("rejected at " + ", ".join(sorted(self.rejected_at)))
        return " and ".join(parts) or "all messages"


EVERYTHING: Final = Selection()  # no criteria: every message


class Progress:
    """A line on stderr at most every `interval` seconds, and one at the end."""

    def __init__(
        self,
        label: str,
        expected: int,
        stream: IO[str] | None = None,
        interval: float = 2.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._label = label
        self._expected = expected
        self._stream = stream or sys.stderr
        self._interval = interval
        self._clock = clock
        self._started = clock()
        self._last = self._started

    def update(self, counts: dict[str, int], done: int) -> None:
        now = self._clock()
        if now - self._last < self._interval:
            return
        self._last = now
        self._write(counts, done, now)

    def _write(self, counts: dict[str, int], done: int, now: float) -> None:
        rate = done / max(now - self._started, 1e-9)
        shown = ", ".join(f"{value:,} {name}" for name, value in counts.items())
        print(
            f"{self._label}: {done:,} of ~{self._expected:,} scanned ({shown}; {rate:,.0f}/s)",
            file=self._stream,
            flush=True,
        )


def approximate_count(sqs: SQSClient, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


class Scanner:
    """Every message of a queue once, hidden for `hold_seconds` while the scan runs."""

    def __init__(self, sqs: SQSClient, url: str, hold_seconds: int = DEFAULT_HOLD_SECONDS):
        self._sqs = sqs
        self._url = url
        self._hold = hold_seconds
        self.seen: set[str] = set()
        self._held: dict[str, str] = {}  # message id -> receipt handle, to release at the end

    def batches(self, stop: threading.Event | None = None) -> Iterator[list[DeadLetter]]:
        old_only = 0
        while old_only < OLD_ONLY_RECEIVES_TO_STOP and not (stop and stop.is_set()):
            messages = self._sqs.receive_message(
                QueueUrl=self._url,
                MaxNumberOfMessages=BATCH,
                VisibilityTimeout=self._hold,
                WaitTimeSeconds=WAIT_SECONDS,
                MessageAttributeNames=["All"],
                MessageSystemAttributeNames=["SentTimestamp"],
            ).get("Messages", [])
            if not messages:
                return
            letters = [DeadLetter.from_message(message) for message in messages]
            for letter in letters:
                self._held[letter.message_id] = letter.receipt_handle
            new = [letter for letter in letters if letter.message_id not in self.seen]
            old_only = 0 if new else old_only + 1
            self.seen.update(letter.message_id for letter in new)
            if new:
                yield new

    def forget(self, message_ids: Sequence[str]) -> None:
        """Messages deleted from the queue: nothing to release."""
        for message_id in message_ids:
            self._held.pop(message_id, None)

    def holding(self) -> int:
        """How many messages this scan holds hidden now (received, neither deleted nor
        released yet)."""
        return len(self._held)

    def release(self) -> None:
        """Make every message still held visible again, so the next command sees it now."""
        handles = list(self._held.values())
        self._held.clear()
        for start in range(0, len(handles), BATCH):
            entries: list[ChangeMessageVisibilityBatchRequestEntryTypeDef] = [
                {"Id": str(i), "ReceiptHandle": handle, "VisibilityTimeout": 0}
                for i, handle in enumerate(handles[start : start + BATCH])
            ]
            try:
                self._sqs.change_message_visibility_batch(QueueUrl=self._url, Entries=entries)
            except (BotoCoreError, ClientError):  # best effort: the hold runs out anyway
                continue
