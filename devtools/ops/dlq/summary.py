"""`dlq` (the default action): what is on the dead-letter queue, counted by rejection reason,
event type and the stage that rejected it, with its oldest message and samples."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

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
    selection: Selection = EVERYTHING,
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
