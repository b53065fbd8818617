"""A client's clock, corrected by the one instant the pixel can trust: its own receive time.

A hit may carry `sent_at`, the client's clock when the request left (the served script
stamps each batch, the templates each hit). The difference between the pixel's receive time
and `sent_at` is the client clock's error plus the request's time in flight. Within
`CLOCK_TOLERANCE` that difference is mostly flight time and nothing is shifted; beyond it
the client's instants (`timestamp`, `session_start`) are shifted by the whole difference,
whatever its size: a machine an hour behind reports an event of one minute ago as an hour
and a minute ago, and is put right. Snowplow's derived timestamp and Segment's and PostHog's
`sentAt` correct the same way (docs/message-format.md, "Clock correction").

`corrected_time` is the one place the correction happens; `clamped_time` follows it: an
instant still later than the receive time (a clock a few minutes ahead and no `sent_at`, or a
forged date) is the receive time, so the time Customer Profiles orders a profile's updates by
cannot be pushed ahead of genuine updates. Correct first, then clamp.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Final

# What a request's flight time may account for; beyond it the client's clock is wrong.
CLOCK_TOLERANCE: Final = timedelta(seconds=5)


class ClockRangeError(ValueError):
    """When an instant shifted by the clock difference falls outside the years 1-9999."""


def clock_offset(sent_at: datetime | None, received_at: datetime) -> timedelta:
    """What to add to the client's instants: receive time minus `sent_at` when they differ
    by more than `CLOCK_TOLERANCE`, else nothing (also when the hit carries no `sent_at`)."""
    if sent_at is None:
        return timedelta(0)
    difference = received_at - sent_at  # within timedelta's range for any two datetimes
    return difference if abs(difference) > CLOCK_TOLERANCE else timedelta(0)


def corrected_time(
    client_time: datetime, sent_at: datetime | None, received_at: datetime
) -> datetime:
    """`client_time` (an instant the client's clock wrote) on the pixel's clock."""
    offset = clock_offset(sent_at, received_at)
    if not offset:
        return client_time
    try:
        return client_time + offset
    except OverflowError:
        raise ClockRangeError("is outside the years 1-9999 once corrected by sent_at") from None


def clamped_time(instant: datetime, received_at: datetime) -> datetime:
    """`instant` (corrected already), never later than when the pixel received the hit."""
    return min(instant, received_at)
