"""`dlq replay` of everything, by SQS's own message move task (the console's "Start DLQ
redrive"): SQS itself receives, sends and deletes, server-side, so killing this command
changes nothing: the task runs on, and the next run finds it and follows it. A journalled
run's leftovers are settled first (`blocking_entries`), because the task would move them
again. moto 5.2.5 does not implement these calls (500 NotImplementedError); the tests use a
stand-in."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import IO, TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from devtools.errors import one_line
from devtools.ops.dlq.journal import HOLD_MARGIN_SECONDS, EntryState, Journal

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

MOVE_ACTIVE: Final = frozenset({"RUNNING", "CANCELLING"})
MOVE_POLL_SECONDS: Final = 5.0


class MoveTaskUnavailableError(RuntimeError):
    """SQS answered that no task can run here (nothing was started): use the journalled path."""


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


def blocking_entries(journal: Journal, now: float, rerun: str = "dlq replay") -> str | None:
    """Why a move task must not start yet, or None. It would move, and so duplicate, any
    message the journal says is already on the events queue or may be. `rerun`: the
    command that replays by default (which settles them first)."""
    in_doubt = sum(e.state is EntryState.IN_DOUBT for e in journal.entries.values())
    if in_doubt:
        return (
            f"{in_doubt} messages in the journal are in doubt (a run was stopped during their"
            f" send): run `{rerun}` without --method, which settles them from the dedupe table"
            " and replays the rest"
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
    except ClientError as error:  # read-only: nothing was started
        raise MoveTaskUnavailableError(one_line(error)) from None
    except BotoCoreError as error:
        raise MoveTaskUnavailableError(f"ListMessageMoveTasks failed: {one_line(error)}") from None
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
                raise MoveTaskUnavailableError(one_line(error)) from None
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
