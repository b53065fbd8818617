"""What delivering an event answers: a verdict per event (and per profile update), and the
one thing the consumer asks of whatever it delivers to.

The consumer (`delivery`), the memory of delivered events (`dedupe`) and every destination
speak this vocabulary, so it sits below all three.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from chalicelib.events import Event


class Verdict(enum.IntEnum):
    """What happened to one event (or its profile update). Higher is worse."""

    DELIVERED = 0
    REJECTED = 1  # no retry can fix it: kept on the dead-letter queue with the reason
    RETRY = 2  # throttled, failed or unknown: the message goes back to the queue


@dataclass(frozen=True)
class Outcome:
    """The event's verdict and, for an event that wrote a profile, the profile's.

    They differ when a destination records the event but not the profile update (or the
    reverse): the consumer must then neither send the event again nor lose the update.
    """

    verdict: Verdict
    reason: str = ""
    profile: Verdict | None = None  # None: the event wrote nothing to a profile
    profile_reason: str = ""


DELIVERED = Outcome(Verdict.DELIVERED)

# Milliseconds of Lambda time left; None where there is no deadline (tests, local runs).
TimeLeft = Callable[[], int] | None


class Recipient(Protocol):
    """What the consumer delivers a batch to: a destination, or a wrapper around one
    (`dedupe.Deduplicated`). `deliver` answers one outcome per event, in order."""

    @property
    def name(self) -> str:
        """The destination's name, as DESTINATIONS and a requeued copy name it."""
        ...

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        """Outcomes in the order of `events`."""
        ...
