"""Events, queue messages and the consumer's queues for tests: one place for the defaults
every test assumes.

Event n is `e-n`, a view by endpoint `ep-1` at INSTANT, received at once, with no attributes,
metrics or profile writes; keyword overrides replace any field. `FakeQueues` stands in for
both of the consumer's queues (`delivery.EventsQueue` and `delivery.DeadLetters`)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from chalicelib.delivery import QueuedMessage
from chalicelib.events import Event, ProfileUpdate
from chalicelib.settlement import DeadLetter, Receipt

INSTANT = "2026-11-28T11:00:00.000Z"


def make_event(n: int = 0, **overrides: Any) -> Event:
    """Event n with `overrides` (any of Event's fields) in place of the defaults."""
    fields: dict[str, Any] = {
        "event_id": f"e-{n}",
        "event_type": "view",
        "endpoint_id": "ep-1",
        "timestamp": INSTANT,
        "received_at": INSTANT,
    }
    return Event(**{**fields, **overrides})


def numbered_event(
    n: int,
    endpoint: str = "ep-1",
    event_type: str = "view",
    timestamp: str = INSTANT,
    *,
    received_at: str | None = None,
    **profile: Any,
) -> Event:
    """Event n carrying its number as attribute `n`, so request bodies tell events apart, and
    `profile` (ProfileUpdate's fields) as its profile writes: the destinations' tests' form."""
    return make_event(
        n,
        endpoint_id=endpoint,
        event_type=event_type,
        timestamp=timestamp,
        received_at=timestamp if received_at is None else received_at,
        attributes={"n": str(n)},
        profile=ProfileUpdate(**profile),
    )


def message_body(n: int = 0, **overrides: Any) -> str:
    """The queue message the pixel would write for make_event(n, **overrides)."""
    return make_event(n, **overrides).to_message()


def queued_message(n: int = 0, **overrides: Any) -> QueuedMessage:
    """Message `m-n` with receipt handle `r-n`, carrying make_event(n, **overrides)."""
    return QueuedMessage(f"m-{n}", f"r-{n}", message_body(n, **overrides))


class FakeQueues:
    """Both queues at once: records deletes, requeues and dead letters; can refuse them."""

    def __init__(self, refuse_requeue: bool = False, refuse_park: bool = False) -> None:
        self.deleted: list[str] = []
        self.requeued: list[Event] = []
        self.parked: list[DeadLetter] = []
        self.refuse_requeue = refuse_requeue
        self.refuse_park = refuse_park

    def delete(self, receipts: Iterable[Receipt]) -> list[str]:
        self.deleted.extend(r.message_id for r in receipts)
        return []

    def requeue(self, events: Iterable[tuple[str, Event]]) -> list[str]:
        pairs = list(events)
        if self.refuse_requeue:
            return [message_id for message_id, _ in pairs]
        self.requeued.extend(event for _, event in pairs)
        return []

    def park(self, letters: Iterable[DeadLetter]) -> list[str]:
        batch = list(letters)
        if self.refuse_park:
            return [x.message_id for x in batch]
        self.parked.extend(batch)
        return []
