"""`dlq replay` by this tool, for any selection: selected dead letters back to the events
queue, none lost and none sent twice through any kill and rerun, by the protocol `journal`
describes. An unfiltered replay goes by SQS's own move task instead (`move_task`)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from devtools.ops.dlq.in_doubt import InDoubtResolver, Settled
from devtools.ops.dlq.journal import HOLD_MARGIN_SECONDS, EntryState, Journal
from devtools.ops.dlq.scan import (
    DEFAULT_HOLD_SECONDS,
    EVERYTHING,
    DeadLetter,
    Progress,
    Scanner,
    Selection,
)

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

REPLAY_MARKER: Final = "replay_of"  # attribute of a replayed message: its dead-letter message id


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
    in_doubt_resent: int = 0  # sent again as asked (--resend-in-doubt)
    in_doubt_delivered: int = 0  # the dedupe table has them everywhere owed: deleted
    in_doubt_settled: int = 0  # sent again: the dedupe table answers for a landed copy
    in_doubt_why: str = ""  # why those left were not settled by this run
    in_doubt_ready_at: float = 0.0  # when a later run settles them (0: it cannot)
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
                f" events queue. Left on the dead-letter queue ({self._in_doubt_why()}). To"
                " send them now, at most one duplicate each with the same event id: run the"
                " same command with --resend-in-doubt",
            ),
            (
                self.in_doubt_delivered,
                "in doubt, found delivered in the dedupe table: deleted, not sent again",
            ),
            (
                self.in_doubt_settled,
                "in doubt, settled and sent again: the consumer's dedupe table answers for a"
                " copy that had landed (a body that is no event reaches no destination)",
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

    def _in_doubt_why(self) -> str:
        why = self.in_doubt_why or "this run could not tell whether they landed"
        if self.in_doubt_ready_at:
            at = datetime.fromtimestamp(self.in_doubt_ready_at, UTC).strftime("%H:%M UTC")
            why += f"; a run after {at} settles them itself"
        return why


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
    selection: Selection = EVERYTHING,
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
    in_doubt: InDoubtResolver | None = None,
) -> ReplayReport:
    """Move selected dead letters back to the events queue: none lost, none sent twice.

    `send_sqs` sends to the events queue; give it a client without retries (botocore retrying
    a send whose answer was lost enqueues it twice). `after_send` runs between the send and
    the delete (tests use it to simulate a crash). `finish_only` sends nothing and only
    deletes what the journal says was sent. Only messages already on the dead-letter queue
    when the run starts are replayed: one that fails again during the run is left for the next.
    `in_doubt` settles messages an earlier run left in doubt, from the consumer's dedupe
    table (`in_doubt` module); without it they wait for `resend_in_doubt`.
    """
    with journal.lock():
        return _replay(
            sqs,
            send_sqs or sqs,
            dead_letter_url,
            events_url,
            journal,
            _Options(selection, include_invalid, limit, resend_in_doubt, finish_only, in_doubt),
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
    in_doubt: InDoubtResolver | None = None


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
            finish, chosen = _choose(batch, journal, options, started, report, clock())
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
    now: float,
) -> tuple[list[DeadLetter], list[DeadLetter]]:
    """(journalled as sent, or found delivered: to delete, never send; chosen to send)."""
    finish: list[DeadLetter] = []
    chosen: list[DeadLetter] = []
    for letter in batch:
        state = journal.state(letter.message_id)
        if state is EntryState.SENT:
            finish.append(letter)
            report.already_sent += 1
            continue
        settled_safely = False
        if state is EntryState.IN_DOUBT and not options.resend_in_doubt:
            settled = _settle_in_doubt(letter, journal, options, report, now)
            if settled is Settled.DELIVERED:
                finish.append(letter)
                continue
            if settled is Settled.WAIT:
                continue
            settled_safely = True
            if options.finish_only:  # settling what an earlier run left is this pass's job
                chosen.append(letter)
                report.in_doubt_settled += 1
                continue
        if options.finish_only:
            report.not_selected += 1
        elif letter.sent_at > started:
            report.newer_than_run += 1
        elif not options.selection.matches(letter):
            report.not_selected += 1
        elif not (options.include_invalid or settled_safely) and not letter.replayable():
            report.not_replayable += 1  # (one sent before, in doubt, goes again: see in_doubt)
        elif options.limit is not None and report.replayed + len(chosen) >= options.limit:
            report.not_selected += 1
        else:
            chosen.append(letter)
            if settled_safely:
                report.in_doubt_settled += 1
            elif state is EntryState.IN_DOUBT:
                report.in_doubt_resent += 1
    return finish, chosen


def _settle_in_doubt(
    letter: DeadLetter, journal: Journal, options: _Options, report: ReplayReport, now: float
) -> Settled:
    """What becomes of a letter an earlier run left in doubt (`in_doubt` module): counted
    here when it is found delivered or left waiting."""
    entry = journal.entries[letter.message_id]
    if options.in_doubt is None:
        settled, why, ready_at = Settled.WAIT, "", 0.0
    else:
        decision = options.in_doubt.decide(letter, entry, now)
        settled, why, ready_at = decision.settled, decision.why, decision.ready_at
    if settled is Settled.DELIVERED:
        report.in_doubt_delivered += 1
    elif settled is Settled.WAIT:
        report.in_doubt_seen += 1
        report.in_doubt_why = report.in_doubt_why or why
        report.in_doubt_ready_at = max(report.in_doubt_ready_at, ready_at)
        if len(report.in_doubt_samples) < 10:
            report.in_doubt_samples.append(
                f"{letter.message_id} (event id {_field(letter.body, 'event_id')})"
            )
    return settled


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
