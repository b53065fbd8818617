"""What `ops check` asks a destination: has the test event arrived, and where; then remove
what the test left there. A destination that cannot be read back has no probe: the check
then proves only that the event left the events queue and was not parked."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

# What a probe hook is given to make its clients: boto3's, for a service name.
ClientFactory = Callable[[str], Any]


@dataclass(frozen=True)
class TestEvent:
    """The check's event: its own endpoint id and event id, and when its hit was sent."""

    __test__ = False  # not a pytest test class, whatever its name

    endpoint_id: str
    event_id: str
    sent_at: datetime


class DeliveryProbe(Protocol):
    """A destination's answer to "is the test event there?"."""

    def delivered(self, test: TestEvent) -> str | None:
        """Where the test event is (one line), or None while it is not there."""

    def cleanup(self, test: TestEvent) -> None:
        """Remove what the test left (an endpoint, a profile); quiet if there is nothing."""
