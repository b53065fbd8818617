"""The destination interface: a batch of events in, one outcome per event out."""

from __future__ import annotations

import enum
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from chalicelib.events import Event


class Verdict(enum.IntEnum):
    """What happened to one event. Higher is worse when two results are combined."""

    DELIVERED = 0
    REJECTED = 1  # no retry can fix it: kept on the dead-letter queue with the reason
    RETRY = 2  # throttled, failed or unknown: the message goes back to the queue


@dataclass(frozen=True)
class Outcome:
    verdict: Verdict
    reason: str = ""

    def worst(self, other: Outcome) -> Outcome:
        return other if other.verdict > self.verdict else self


DELIVERED = Outcome(Verdict.DELIVERED)


def outcome_for_status(status: int, message: str) -> Outcome:
    """Per-item HTTP-like status to verdict: 2xx delivered, 429/5xx retry, other 4xx reject."""
    if 200 <= status < 300:
        return DELIVERED
    reason = f"{status} {message}".strip()
    if status == 429 or status >= 500:
        return Outcome(Verdict.RETRY, reason)
    return Outcome(Verdict.REJECTED, reason)


class Destination(Protocol):
    """A service that records events. `deliver` never raises for a service failure:
    it answers RETRY for the events concerned instead."""

    name: str

    def deliver(self, events: Sequence[Event]) -> list[Outcome]:
        """Outcomes in the order of `events`."""
        ...
