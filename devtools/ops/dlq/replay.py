"""The dead-letter queue, for operators: what is on it, and putting it back after a fix.

Reading a queue means receiving its messages, which hides each one for a while (the *hold*):
that is what keeps two readers, or one long scan, from seeing a message twice. Nothing else
reads the dead-letter queue (no event source is attached to it), so a hold delays nobody.
Messages are released again as soon as a scan is done.

Replay loses nothing and sends nothing twice, through any kill and rerun on the machine that
holds its journal (the protocol is spelled out above `Journal` below). An unfiltered replay is
SQS's own message move task instead, which runs server-side. docs/operations.md says what
each path guarantees and what an operator does after an interruption.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from enum import Enum
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

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
#
# The journalled path (any selection). Per batch, with `id` a dead-letter message id:
#   1. receive (hidden for the hold);          journal `sending id hidden_until`  (synced)
#   2. SendMessageBatch to the events queue;   journal `sent id hidden_until`     (synced)
#                                           or `unsent id` when SQS refused it for certain;
#   3. DeleteMessageBatch with the fresh receipt handle; journal `deleted id`.
# Rules on every later run, whatever happened in between:
#   - `sent`: never sent again. Deleted when next received; until then it stays in the journal,
#     even if no scan finds it: a message hidden by a killed run's hold (in flight) is absent
#     from a scan and still on the queue, and absence proves nothing.
#   - `sending` without an answer (killed during the send, or its answer lost): in doubt. It may
#     be on the events queue, so it is never sent again unless the operator accepts the risk
#     (`resend_in_doubt`), and never deleted, which could lose it.
#   - an entry is forgotten only when its delete is confirmed, or once the dead-letter queue's
#     retention period has passed since its receive: then SQS has dropped the message for sure.
# The one thing the journal cannot survive is being lost (another machine, a deleted file):
# then a message of the batch in flight at the kill is sent again (≤ 10 per interrupted run),
# carrying the `replay_of` attribute with the same dead-letter message id and the same event id.

REPLAY_MARKER: Final = "replay_of"  # attribute of a replayed message: its dead-letter message id
HOLD_MARGIN_SECONDS: Final = 1.0  # a delete later than this before the hold ends is unconfirmed


class EntryState(Enum):
    IN_DOUBT = "sending"  # the send was started; its answer never came
    SENT = "sent"  # on the events queue; the dead-letter copy must be deleted, never re-sent


@dataclass(frozen=True)
class Entry:
    state: EntryState
    hidden_until: float  # unix seconds when the hold of the receive that sent it ends


class JournalBusyError(RuntimeError):
    """Another replay on this machine holds the journal."""


class Journal:
    """The replay's memory across kills: one line per dead-letter message id and step, appended
    and synced before the step it guards. Only one replay may use a journal at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        self._locked = False
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                self._apply(line.split())

    def _apply(self, fields: list[str]) -> None:
        if len(fields) < 2:
            return  # a line torn by a crash mid-write: its step never started
        action, message_id = fields[0], fields[1]
        if action in ("sending", "sent"):
            try:
                # Old journals have no time: keep such an entry a full retention from now.
                hidden_until = float(fields[2]) if len(fields) > 2 else time.time()
            except ValueError:
                hidden_until = time.time()
            self.entries[message_id] = Entry(EntryState(action), hidden_until)
        elif action in ("unsent", "deleted"):
            self.entries.pop(message_id, None)

    @property
    def pending(self) -> set[str]:
        """Ids that must not be sent again (sent, or in doubt)."""
        return set(self.entries)

    def state(self, message_id: str) -> EntryState | None:
        entry = self.entries.get(message_id)
        return entry.state if entry else None

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """Two replays sharing a journal would each take the other's entries for their own.
        Re-entrant for one Journal object (a settling pass inside a move)."""
        if self._locked:
            yield
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.with_name(self.path.name + ".lock").open("a") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise JournalBusyError(
                    f"another replay is using {self.path}; wait for it to finish"
                ) from None
            self._locked = True
            try:
                yield
            finally:
                self._locked = False
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def _append(self, lines: list[str], durable: bool) -> None:
        if not lines:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as journal:
            journal.writelines(line + "\n" for line in lines)
            if durable:
                journal.flush()
                os.fsync(journal.fileno())
        for line in lines:
            self._apply(line.split())

    def sending(self, message_ids: Sequence[str], hidden_until: float) -> None:
        """On disk before the send starts: a send cut off half-way is then known to be in doubt."""
        self._append([f"sending {i} {hidden_until:.3f}" for i in message_ids], durable=True)

    def sent(self, message_ids: Sequence[str], hidden_until: float) -> None:
        """On disk before the delete starts: this line is what prevents a resend."""
        self._append([f"sent {i} {hidden_until:.3f}" for i in message_ids], durable=True)

    def unsent(self, message_ids: Sequence[str]) -> None:
        # Not synced: if lost, the entry stays in doubt, which only asks the operator to decide.
        self._append([f"unsent {i}" for i in message_ids], durable=False)

    def deleted(self, message_ids: Sequence[str]) -> None:
        # Not synced: if lost, the entry stays `sent` until seen again or expired; never resent.
        self._append([f"deleted {i}" for i in message_ids], durable=False)

    def expire(self, retention_seconds: float, now: float) -> list[str]:
        """Forget entries whose message SQS has dropped for certain (older than the retention)."""
        gone = [i for i, e in self.entries.items() if e.hidden_until + retention_seconds < now]
        for message_id in gone:
            del self.entries[message_id]
        return gone

    def compact(self) -> None:
        """Keep only the live entries (atomically, synced); no file at all when none are."""
        if not self.entries:
            self.path.unlink(missing_ok=True)
            return
        temporary = self.path.with_name(self.path.name + ".tmp")
        with temporary.open("w", encoding="utf-8") as handle:
            handle.writelines(
                f"{e.state.value} {i} {e.hidden_until:.3f}\n" for i, e in self.entries.items()
            )
            handle.flush()
            os.fsync(handle.fileno())
        temporary.replace(self.path)
        directory = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)


@dataclass
class ReplayReport:
    scanned: int = 0
    replayed: int = 0
    already_sent: int = 0  # journalled `sent`, received again: deleted, not sent again
    not_selected: int = 0
    newer_than_run: int = 0
    not_replayable: int = 0
    send_failed: int = 0  # refused by SQS for certain: left, sent by a later run
    send_unanswered: int = 0  # this run's send got no answer: now in doubt
    in_doubt_seen: int = 0  # in doubt from an earlier run: left on the dead-letter queue
    in_doubt_resent: int = 0
    in_doubt_samples: list[str] = field(default_factory=list)
    delete_failed: int = 0
    delete_unconfirmed: int = 0  # deleted after our hold may have ended: kept in the journal
    hidden_by_earlier_run: int = 0  # journalled `sent`, still hidden by the killed run's hold
    hidden_until: float = 0.0
    sent_not_seen: int = 0  # journalled `sent`, hold over, not received: probably deleted
    in_doubt_not_seen: int = 0
    forgotten: int = 0  # past the queue's retention
    interrupted: bool = False

    def counts(self) -> dict[str, int]:
        return {
            "replayed": self.replayed,
            "skipped": self.not_selected + self.newer_than_run + self.not_replayable,
            "failed": self.send_failed + self.delete_failed,
        }

    @property
    def in_doubt(self) -> int:
        return self.send_unanswered + self.in_doubt_seen + self.in_doubt_not_seen

    def incomplete(self) -> bool:
        """Whether the operator has something left to do (the command exits 1)."""
        return bool(
            self.interrupted
            or self.send_failed
            or self.delete_failed
            or self.in_doubt
            or self.hidden_by_earlier_run
        )

    def render(self, dead_letter_queue: str, events_queue: str) -> str:
        lines = [
            f"replayed {self.replayed:,} messages from {dead_letter_queue} to {events_queue}"
            f" ({self.scanned:,} scanned)"
            + (": interrupted, run the same command again to continue" if self.interrupted else "")
        ]
        until = datetime.fromtimestamp(self.hidden_until, UTC).strftime("%H:%M:%S UTC")
        for count, text in (
            (self.already_sent, "sent by an earlier run: deleted now, not sent again"),
            (
                self.hidden_by_earlier_run,
                "sent by an interrupted run, still hidden by its hold until"
                f" {until}: they will not be sent again; run again after {until} to delete"
                " them from the dead-letter queue",
            ),
            (self.not_selected, "not selected: left on the dead-letter queue"),
            (self.newer_than_run, "arrived during this run: left for the next run"),
            (
                self.not_replayable,
                "not a valid event message: left (the consumer would park it again;"
                " --include-invalid sends them anyway)",
            ),
            (self.send_failed, "refused by the events queue: left, run again"),
            (
                self.send_unanswered,
                "sent by this run without an answer (a timeout, a cut connection)",
            ),
            (
                self.in_doubt,
                "in doubt: a run was stopped during their send, so they may already be on the"
                " events queue. Left on the dead-letter queue and never sent again on their"
                " own; check the destination for their event ids, then either leave them or"
                " replay with --resend-in-doubt (at most one duplicate each, same event id)",
            ),
            (self.in_doubt_resent, "in doubt, sent again as asked (--resend-in-doubt)"),
            (
                self.delete_failed,
                "sent but their delete failed: a later run deletes them, never sends them again",
            ),
            (
                self.delete_unconfirmed + self.sent_not_seen,
                "sent, their delete not confirmed: kept in the journal, so they are deleted,"
                " never sent again, if they show up (forgotten after the queue's retention)",
            ),
            (self.forgotten, "journal entries older than the queue's retention: forgotten"),
        ):
            if count:
                lines.append(f"  {count:,} {text}")
        lines.extend(f"    in doubt: {sample}" for sample in self.in_doubt_samples)
        return "\n".join(lines)


def retention_seconds(sqs: SQSClient, url: str) -> float | None:
    """The queue's retention period, or None (then no journal entry is ever forgotten)."""
    try:
        attributes = sqs.get_queue_attributes(
            QueueUrl=url, AttributeNames=["MessageRetentionPeriod"]
        )["Attributes"]
        return float(attributes["MessageRetentionPeriod"])
    except (BotoCoreError, ClientError, KeyError, ValueError):
        return None


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
    send_sqs: SQSClient | None = None,
    resend_in_doubt: bool = False,
    finish_only: bool = False,
    clock: Callable[[], float] = time.time,
) -> ReplayReport:
    """Move selected dead letters back to the events queue: none lost, none sent twice.

    `send_sqs` sends to the events queue; give it a client without retries (botocore retrying
    a send whose answer was lost enqueues it twice). `after_send` runs between the send and
    the delete (tests use it to simulate a crash). `finish_only` sends nothing and only
    deletes what the journal says was sent. Only messages already on the dead-letter queue
    when the run starts are replayed: one that fails again during the run is left for the next.
    """
    with journal.lock():
        return _replay(
            sqs,
            send_sqs or sqs,
            dead_letter_url,
            events_url,
            journal,
            _Options(selection, include_invalid, limit, resend_in_doubt, finish_only),
            hold_seconds,
            progress,
            stop,
            after_send,
            clock,
        )


@dataclass(frozen=True)
class _Options:
    selection: Selection
    include_invalid: bool
    limit: int | None
    resend_in_doubt: bool
    finish_only: bool


def _replay(
    sqs: SQSClient,
    sender: SQSClient,
    dead_letter_url: str,
    events_url: str,
    journal: Journal,
    options: _Options,
    hold_seconds: int,
    progress: Progress | None,
    stop: threading.Event | None,
    after_send: Callable[[list[DeadLetter]], None] | None,
    clock: Callable[[], float],
) -> ReplayReport:
    report = ReplayReport()
    started = datetime.now(UTC)
    retention = retention_seconds(sqs, dead_letter_url)
    scanner = Scanner(sqs, dead_letter_url, hold_seconds)
    try:
        for batch in scanner.batches(stop):
            # Our clock after the receive: the hold ends no earlier than this (bar clock skew).
            hidden_until = clock() + hold_seconds
            report.scanned += len(batch)
            finish, chosen = _choose(batch, journal, options, started, report)
            journal.sending([letter.message_id for letter in chosen], hidden_until)
            sent = _send(sender, events_url, chosen, journal, hidden_until, report)
            if after_send is not None:
                after_send(sent)
            to_delete = finish + sent
            deleted = _delete(sqs, dead_letter_url, to_delete)
            if clock() < hidden_until - HOLD_MARGIN_SECONDS:
                journal.deleted(deleted)
            else:  # our hold may have ended: a newer receive makes "Successful" prove nothing
                report.delete_unconfirmed += len(deleted)
            scanner.forget(deleted)
            report.delete_failed += len(to_delete) - len(deleted)
            report.replayed += len(sent)
            if progress:
                progress.update(report.counts(), report.scanned)
            if options.limit is not None and report.replayed >= options.limit:
                break  # the rest stays held until released below
        report.interrupted = bool(stop and stop.is_set())
    finally:
        scanner.release()
        _account_unseen(journal, scanner.seen, clock(), report)
        if retention is not None:
            report.forgotten = len(journal.expire(retention, clock()))
        journal.compact()
    return report


def _choose(
    batch: list[DeadLetter],
    journal: Journal,
    options: _Options,
    started: datetime,
    report: ReplayReport,
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(journalled as sent: to delete, never send; chosen to send)."""
    finish: list[DeadLetter] = []
    chosen: list[DeadLetter] = []
    for letter in batch:
        state = journal.state(letter.message_id)
        if state is EntryState.SENT:
            finish.append(letter)
            report.already_sent += 1
            continue
        if state is EntryState.IN_DOUBT and not options.resend_in_doubt:
            report.in_doubt_seen += 1
            if len(report.in_doubt_samples) < 10:
                report.in_doubt_samples.append(
                    f"{letter.message_id} (event id {_field(letter.body, 'event_id')})"
                )
            continue
        if options.finish_only:
            report.not_selected += 1
        elif letter.sent_at > started:
            report.newer_than_run += 1
        elif not options.selection.matches(letter):
            report.not_selected += 1
        elif not options.include_invalid and not letter.replayable():
            report.not_replayable += 1
        elif options.limit is not None and report.replayed + len(chosen) >= options.limit:
            report.not_selected += 1
        else:
            chosen.append(letter)
            if state is EntryState.IN_DOUBT:
                report.in_doubt_resent += 1
    return finish, chosen


def _account_unseen(journal: Journal, seen: set[str], now: float, report: ReplayReport) -> None:
    """What the journal still holds that this run did not receive, and why that is fine."""
    for message_id, entry in journal.entries.items():
        if message_id in seen:
            continue
        if entry.state is EntryState.IN_DOUBT:
            report.in_doubt_not_seen += 1
        elif entry.hidden_until + HOLD_MARGIN_SECONDS > now:
            report.hidden_by_earlier_run += 1
            report.hidden_until = max(report.hidden_until, entry.hidden_until)
        else:
            report.sent_not_seen += 1


def _field(body: str, name: str) -> str:
    try:
        document = json.loads(body)
    except ValueError:
        return "?"
    value = document.get(name) if isinstance(document, dict) else None
    return value if isinstance(value, str) else "?"


def _send(
    sqs: SQSClient,
    url: str,
    letters: list[DeadLetter],
    journal: Journal,
    hidden_until: float,
    report: ReplayReport,
) -> list[DeadLetter]:
    """Send, each with its replay marker, and journal the outcome; the letters SQS accepted."""
    if not letters:
        return []
    try:
        response = sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(i),
                    "MessageBody": letter.body,
                    "MessageAttributes": {
                        REPLAY_MARKER: {"DataType": "String", "StringValue": letter.message_id}
                    },
                }
                for i, letter in enumerate(letters)
            ],
        )
    except ClientError as error:
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if 400 <= status < 500:  # refused: nothing was enqueued
            journal.unsent([letter.message_id for letter in letters])
            report.send_failed += len(letters)
        else:  # a server error may come after the enqueue
            report.send_unanswered += len(letters)
        return []
    except BotoCoreError:  # no answer: it may have been enqueued; stays in doubt
        report.send_unanswered += len(letters)
        return []
    accepted = [letters[int(entry["Id"])] for entry in response.get("Successful", [])]
    refused = [letters[int(entry["Id"])] for entry in response.get("Failed", [])]
    journal.sent([letter.message_id for letter in accepted], hidden_until)
    journal.unsent([letter.message_id for letter in refused])
    report.send_failed += len(refused)
    report.send_unanswered += len(letters) - len(accepted) - len(refused)
    return accepted


def _delete(sqs: SQSClient, url: str, letters: list[DeadLetter]) -> list[str]:
    """Delete from the dead-letter queue; the message ids SQS confirmed (one retry)."""
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


# Moving everything with SQS's own redrive -------------------------------------------------
#
# An unfiltered replay is what SQS's message move task does (the console's "Start DLQ
# redrive"): SQS itself receives, sends and deletes, server-side, so killing this command
# changes nothing: the task runs on, and the next run finds it and follows it. moto 5.2.5 does
# not implement these calls (500 NotImplementedError); the tests use a stand-in.

MOVE_ACTIVE: Final = frozenset({"RUNNING", "CANCELLING"})
MOVE_POLL_SECONDS: Final = 5.0


class MoveTaskUnavailableError(RuntimeError):
    """SQS answered that no task can run here (nothing was started): use the journalled path."""


class ReplayRefusedError(RuntimeError):
    """Starting would risk a duplicate; the message says what to do first."""


@dataclass
class MoveReport:
    status: str = ""
    moved: int = 0
    to_move: int = 0
    failure_reason: str = ""
    followed_existing: bool = False  # a task started earlier (by a killed run) was running
    cancelled: bool = False

    def incomplete(self) -> bool:
        return self.status != "COMPLETED"

    def render(self, dead_letter_queue: str, events_queue: str) -> str:
        text = (
            f"SQS moved {self.moved:,} of ~{self.to_move:,} messages from {dead_letter_queue}"
            f" to {events_queue}: task {self.status}"
        )
        if self.followed_existing:
            text += " (a task started by an earlier run)"
        if self.failure_reason:
            text += f": {self.failure_reason}"
        if self.cancelled or self.status == "CANCELLED":
            text += "\n  cancelled: moved messages stay moved, the rest stay; run again to go on"
        elif self.status == "FAILED":
            text += "\n  the rest stay on the dead-letter queue; fix the cause and run again"
        return text


def blocking_entries(journal: Journal, now: float) -> str | None:
    """Why a move task must not start yet, or None. It would move, and so duplicate, any
    message the journal says is already on the events queue or may be."""
    in_doubt = sum(e.state is EntryState.IN_DOUBT for e in journal.entries.values())
    if in_doubt:
        return (
            f"{in_doubt} messages in the journal are in doubt (a run was stopped during their"
            " send). Resolve them with the journalled path first: `dlq replay --method journal`"
            " (add --resend-in-doubt to send them, accepting a possible duplicate)"
        )
    hidden = [
        e.hidden_until
        for e in journal.entries.values()
        if e.hidden_until + HOLD_MARGIN_SECONDS > now
    ]
    if hidden:
        until = datetime.fromtimestamp(max(hidden), UTC).strftime("%H:%M:%S UTC")
        return (
            f"{len(hidden)} messages sent by an interrupted run are hidden until {until};"
            " run again after that (they are deleted first, then the move starts)"
        )
    return None


def queue_arn(sqs: SQSClient, url: str) -> str:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]


def move_all(
    sqs: SQSClient,
    dead_letter_url: str,
    events_url: str,
    stop: threading.Event | None = None,
    stream: IO[str] | None = None,
    rate: int | None = None,
    poll_seconds: float = MOVE_POLL_SECONDS,
    sleep: Callable[[float], object] = time.sleep,
) -> MoveReport:
    """Every message of the dead-letter queue to the events queue by an SQS move task; follows
    a task that is already running instead of starting another. Ctrl-C cancels the task."""
    source = queue_arn(sqs, dead_letter_url)
    report = MoveReport()
    try:
        tasks = sqs.list_message_move_tasks(SourceArn=source, MaxResults=1)["Results"]
    except (BotoCoreError, ClientError) as error:  # read-only: nothing was started
        raise MoveTaskUnavailableError(f"ListMessageMoveTasks failed: {error}") from None
    if tasks and tasks[0].get("Status") in MOVE_ACTIVE:
        report.followed_existing = True
    else:
        start: dict[str, Any] = {
            "SourceArn": source,
            "DestinationArn": queue_arn(sqs, events_url),
        }
        if rate is not None:
            start["MaxNumberOfMessagesPerSecond"] = rate
        try:
            sqs.start_message_move_task(**start)
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if 400 <= status < 500:  # refused: no task exists
                raise MoveTaskUnavailableError(f"StartMessageMoveTask refused: {error}") from None
            raise  # it may have started: the next run lists it instead of guessing
    return _follow(sqs, source, report, stop, stream or sys.stderr, poll_seconds, sleep)


def _follow(
    sqs: SQSClient,
    source: str,
    report: MoveReport,
    stop: threading.Event | None,
    stream: IO[str],
    poll_seconds: float,
    sleep: Callable[[float], object],
) -> MoveReport:
    while True:
        results = sqs.list_message_move_tasks(SourceArn=source, MaxResults=1)["Results"]
        task = results[0] if results else {}
        report.status = task.get("Status", "UNKNOWN")
        report.moved = task.get("ApproximateNumberOfMessagesMoved", 0)
        report.to_move = task.get("ApproximateNumberOfMessagesToMove", report.moved)
        report.failure_reason = task.get("FailureReason", "")
        if report.status not in MOVE_ACTIVE:
            return report
        print(
            f"dlq move: {report.moved:,} of ~{report.to_move:,} moved ({report.status})",
            file=stream,
            flush=True,
        )
        if stop is not None and stop.is_set() and not report.cancelled:
            handle = task.get("TaskHandle")
            if handle:
                sqs.cancel_message_move_task(TaskHandle=handle)
                report.cancelled = True
        sleep(poll_seconds)
