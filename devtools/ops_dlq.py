"""The dead-letter queue, for operators: what is on it, and putting it back after a fix.

Reading a queue means receiving its messages, which hides each one for a while (the *hold*):
that is what keeps two readers, or one long scan, from seeing a message twice. Nothing else
reads the dead-letter queue (no event source is attached to it), so a hold delays nobody.
Messages are released again as soon as a scan is done.

Replay is at least once, never lossy. Per batch of up to ten: send the bodies, unchanged, to
the events queue; then delete exactly the ones SQS accepted from the dead-letter queue. A
message is on at least one queue at every moment. Between the send and the delete the
message ids are written to a journal file, so if the process is killed in that window, the
next run deletes them instead of sending them again. Ctrl-C (or SIGTERM) stops after the
batch in flight. The remaining window for a duplicate is a crash during the send call itself,
and a duplicate carries the same event id, so Pinpoint and downstream readers can drop it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
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


# Summary ----------------------------------------------------------------------------------


@dataclass
class Summary:
    total: int = 0
    selected: int = 0
    by_reason: Counter[str] = field(default_factory=Counter)
    by_event_type: Counter[str] = field(default_factory=Counter)
    by_rejected_at: Counter[str] = field(default_factory=Counter)
    oldest: datetime | None = None
    samples: list[DeadLetter] = field(default_factory=list)

    def add(self, letter: DeadLetter, samples: int) -> None:
        self.selected += 1
        self.by_reason[letter.reason] += 1
        self.by_event_type[letter.event_type] += 1
        self.by_rejected_at[letter.rejected_at] += 1
        if self.oldest is None or letter.sent_at < self.oldest:
            self.oldest = letter.sent_at
        if len(self.samples) < samples:
            self.samples.append(letter)

    def render(self, queue: str, selection: Selection, now: datetime) -> str:
        lines = [
            f"{queue}: {self.total:,} messages; {self.selected:,} match {selection.describe()}"
        ]
        if self.oldest is not None:
            lines.append(f"oldest: {_age(now - self.oldest)} ago ({self.oldest.isoformat()})")
        for title, counter in (
            ("by rejection_reason", self.by_reason),
            ("by event type", self.by_event_type),
            ("by rejected_at_stage", self.by_rejected_at),
        ):
            if counter:
                lines.append(title + ":")
                lines.extend(f"  {count:>8,}  {name}" for name, count in counter.most_common())
        if self.by_rejected_at.get("pinpoint:profile"):
            lines.append(
                "note: pinpoint:profile messages hold a whole event whose profile update failed;"
                " replaying them records the event again (same event id) with the update."
            )
        for letter in self.samples:
            lines.append(
                f"sample {letter.message_id} ({letter.rejected_at}: {letter.reason}):\n"
                f"  {letter.body}"
            )
        return "\n".join(lines)


def _age(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    days, seconds = divmod(seconds, 86_400)
    hours, seconds = divmod(seconds, 3_600)
    minutes, seconds = divmod(seconds, 60)
    if days:
        return f"{days} d {hours} h"
    if hours:
        return f"{hours} h {minutes} min"
    return f"{minutes} min {seconds} s"


def summarize(
    sqs: SQSClient,
    url: str,
    selection: Selection = Selection(),
    samples: int = 0,
    hold_seconds: int = DEFAULT_HOLD_SECONDS,
    progress: Progress | None = None,
) -> Summary:
    summary = Summary()
    scanner = Scanner(sqs, url, hold_seconds)
    try:
        for batch in scanner.batches():
            for letter in batch:
                summary.total += 1
                if selection.matches(letter):
                    summary.add(letter, samples)
            if progress:
                progress.update({"matching": summary.selected}, summary.total)
    finally:
        scanner.release()
    return summary


# Replay -----------------------------------------------------------------------------------


class Journal:
    """Message ids sent to the events queue whose delete from the dead-letter queue is not
    yet confirmed. A run that finds one deletes it instead of sending it again."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.pending: set[str] = set()
        if path.exists():
            for line in path.read_text().splitlines():
                action, _, message_id = line.partition(" ")
                if action == "sent":
                    self.pending.add(message_id)
                elif action == "deleted":
                    self.pending.discard(message_id)

    def _append(self, action: str, message_ids: Sequence[str], durable: bool) -> None:
        if not message_ids:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as journal:
            journal.writelines(f"{action} {message_id}\n" for message_id in message_ids)
            if durable:
                journal.flush()
                os.fsync(journal.fileno())

    def sent(self, message_ids: Sequence[str]) -> None:
        """On disk before the delete is attempted: this line is what prevents a resend."""
        self._append("sent", message_ids, durable=True)
        self.pending.update(message_ids)

    def deleted(self, message_ids: Sequence[str]) -> None:
        # Not synced: if this line is lost, the next run finds the id pending, looks for a
        # message that is no longer there, and forgets it after a complete scan.
        self._append("deleted", message_ids, durable=False)
        self.pending.difference_update(message_ids)

    def forget_all_but(self, still_queued: set[str]) -> None:
        """After a complete scan: pending ids not on the queue any more were deleted."""
        self.pending.intersection_update(still_queued)

    def compact(self) -> None:
        """Keep only what is still pending; no file at all when nothing is."""
        if not self.pending:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text("".join(f"sent {message_id}\n" for message_id in self.pending))
        temporary.replace(self.path)


@dataclass
class ReplayReport:
    scanned: int = 0
    replayed: int = 0
    already_sent: int = 0  # found in the journal: deleted without sending again
    not_selected: int = 0
    newer_than_run: int = 0
    not_replayable: int = 0
    send_failed: int = 0
    delete_failed: int = 0
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "replayed": self.replayed,
            "skipped": self.not_selected + self.newer_than_run + self.not_replayable,
            "failed": self.send_failed + self.delete_failed,
        }

    def render(self, dead_letter_queue: str, events_queue: str) -> str:
        lines = [
            f"replayed {self.replayed:,} messages from {dead_letter_queue} to {events_queue}"
            f" ({self.scanned:,} scanned)"
            + (": interrupted, run the same command again to continue" if self.interrupted else "")
        ]
        for count, text in (
            (self.already_sent, "already sent by an interrupted run: deleted, not sent again"),
            (self.not_selected, "not selected: left on the dead-letter queue"),
            (self.newer_than_run, "arrived during this run: left for the next run"),
            (
                self.not_replayable,
                "not a valid event message: left (the consumer would park it again;"
                " --include-invalid sends them anyway)",
            ),
            (self.send_failed, "not accepted by the events queue: left, run again"),
            (
                self.delete_failed,
                "sent but not deleted: the journal makes the next run delete them",
            ),
        ):
            if count:
                lines.append(f"  {count:,} {text}")
        return "\n".join(lines)


def replay(
    sqs: SQSClient,
    dead_letter_url: str,
    events_url: str,
    journal: Journal,
    selection: Selection = Selection(),
    include_invalid: bool = False,
    limit: int | None = None,
    hold_seconds: int = DEFAULT_HOLD_SECONDS,
    progress: Progress | None = None,
    stop: threading.Event | None = None,
    after_send: Callable[[list[DeadLetter]], None] | None = None,
) -> ReplayReport:
    """Move selected dead letters back to the events queue, at least once, none lost.

    `after_send` runs between the send and the delete (tests use it to simulate a crash).
    Only messages already on the dead-letter queue when the run starts are replayed: one
    that fails again during the run is left for the next.
    """
    report = ReplayReport()
    started = datetime.now(UTC)
    scanner = Scanner(sqs, dead_letter_url, hold_seconds)
    try:
        for batch in scanner.batches(stop):
            report.scanned += len(batch)
            finish = [letter for letter in batch if letter.message_id in journal.pending]
            report.already_sent += len(finish)
            chosen: list[DeadLetter] = []
            for letter in batch:
                if letter.message_id in journal.pending:
                    continue
                if letter.sent_at > started:
                    report.newer_than_run += 1
                elif not selection.matches(letter):
                    report.not_selected += 1
                elif not include_invalid and not letter.replayable():
                    report.not_replayable += 1
                elif limit is not None and report.replayed + len(chosen) >= limit:
                    report.not_selected += 1
                else:
                    chosen.append(letter)
            sent = _send(sqs, events_url, chosen)
            report.send_failed += len(chosen) - len(sent)
            journal.sent([letter.message_id for letter in sent])
            if after_send is not None:
                after_send(sent)
            to_delete = finish + sent
            deleted = _delete(sqs, dead_letter_url, to_delete)
            journal.deleted(deleted)
            scanner.forget(deleted)
            report.delete_failed += len(to_delete) - len(deleted)
            report.replayed += len(sent)
            if progress:
                progress.update(report.counts(), report.scanned)
            if limit is not None and report.replayed >= limit:
                break  # the rest stays held until released below
        else:
            # The whole queue was seen: a journal id not on it any more was deleted.
            if not (stop and stop.is_set()):
                journal.forget_all_but(scanner.seen)
        report.interrupted = bool(stop and stop.is_set())
    finally:
        scanner.release()
        journal.compact()
    return report


def _send(sqs: SQSClient, url: str, letters: list[DeadLetter]) -> list[DeadLetter]:
    """The letters the events queue accepted (a failed call accepts none)."""
    if not letters:
        return []
    try:
        response = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "MessageBody": letter.body} for i, letter in enumerate(letters)
            ],
        )
    except (BotoCoreError, ClientError):  # nothing was sent; the hold brings them back
        return []
    return [letters[int(entry["Id"])] for entry in response.get("Successful", [])]


def _delete(sqs: SQSClient, url: str, letters: list[DeadLetter]) -> list[str]:
    """Delete from the dead-letter queue; the message ids actually deleted (one retry)."""
    remaining = letters
    deleted: list[str] = []
    for _ in range(2):
        if not remaining:
            break
        try:
            response = sqs.delete_message_batch(
                QueueUrl=url,
                Entries=[
                    {"Id": str(i), "ReceiptHandle": letter.receipt_handle}
                    for i, letter in enumerate(remaining)
                ],
            )
        except (BotoCoreError, ClientError):  # retried once, then left to the journal
            continue
        done = {int(entry["Id"]) for entry in response.get("Successful", [])}
        deleted.extend(remaining[i].message_id for i in sorted(done))
        remaining = [letter for i, letter in enumerate(remaining) if i not in done]
    return deleted
