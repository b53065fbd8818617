"""Settling a replay's in-doubt messages: the ones whose send got no answer, so that they may
or may not be on the events queue already (`journal`).

The consumer's dedupe table (`DEDUPE_TABLE`, chalicelib/dedupe.py) is what decides, because
it records each event a destination has recorded, whichever copy carried it:

- the table holds the event for every destination the message is owed to: it was delivered
  (by the copy that landed, or any other); the dead letter is deleted, nothing is sent;
- it does not, and the copy that may have landed has had time to be delivered or parked (the
  events queue's visibility timeout x its receives before the redrive policy moves it): the
  letter is sent again. If the first copy did land and was delivered since, the consumer
  reads that in the table and answers the second as delivered without sending it;
- otherwise it waits for a later run (and says when).

Without a table nothing here can tell a landed copy from none, and the consumer's own
memory is per container: a resent copy may be delivered twice, so such messages stay in
doubt until the operator decides (`--resend-in-doubt`). docs/operations.md says what a
duplicate means at each destination.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, Any

from chalicelib.dedupe import DedupeSettings, DynamoDeliveryStore, StoreUnavailableError
from chalicelib.destinations import registry
from chalicelib.events import Event, MessageError
from devtools.ops.dlq.journal import Entry
from devtools.ops.dlq.scan import DeadLetter

if TYPE_CHECKING:
    from chalicelib.dedupe import DeliveryStore


class Settled(Enum):
    DELIVERED = "delivered"  # the table has it everywhere owed: delete, never send
    RESEND = "resend"  # safe to send again: the table answers for a copy that landed
    WAIT = "wait"  # not yet: a later run decides


@dataclass(frozen=True)
class Decision:
    settled: Settled
    why: str = ""  # for WAIT: why not now
    ready_at: float = 0.0  # for WAIT on the events queue: when a later run settles it


@dataclass(frozen=True)
class InDoubtResolver:
    """Decides what becomes of an in-doubt dead letter, from the consumer's dedupe table.
    `store` None: the stage has no DEDUPE_TABLE, and every in-doubt letter waits."""

    store: DeliveryStore | None
    destinations: tuple[str, ...]  # the stage's DESTINATIONS
    quiet_seconds: float  # how long a landed copy may stay on the events queue

    def decide(self, letter: DeadLetter, entry: Entry, now: float) -> Decision:
        try:
            event = Event.from_message(letter.body)
        except MessageError:
            # Not an event: no destination can receive it twice; the consumer parks it again.
            return Decision(Settled.RESEND)
        if self.store is None:
            return Decision(
                Settled.WAIT,
                "the stage has no DEDUPE_TABLE, so a copy sent again may be delivered twice",
            )
        owed = event.destinations or self.destinations
        key = (event.endpoint_id, event.event_id)
        try:
            recorded = [self.store.seen(name, [key], None) for name in owed]
        except StoreUnavailableError as error:
            return Decision(Settled.WAIT, f"the dedupe table could not be read ({error})")
        if all(key in found for found in recorded):
            return Decision(Settled.DELIVERED)
        # The send happened before the receive's hold ended: a copy that landed then has
        # been delivered (and recorded) or parked by `ready_at`, unless the consumer stopped.
        ready_at = entry.hidden_until + self.quiet_seconds
        if now < ready_at:
            why = "a copy that landed may still be on the events queue"
            return Decision(Settled.WAIT, why, ready_at)
        return Decision(Settled.RESEND)


def in_doubt_resolver(
    environment: Mapping[str, str],
    dynamodb: Any,
    visibility_timeout_seconds: int,
    max_receive_count: int,
) -> InDoubtResolver:
    """The resolver for a stage (its `.chalice/config.json` environment), reading the
    dedupe table with the operator's DynamoDB client. A landed copy leaves the events queue
    within its visibility timeout times the receives before the redrive policy moves it."""
    settings = DedupeSettings.from_env(environment)
    store = (
        None
        if settings.table is None
        else DynamoDeliveryStore(dynamodb, settings.table, settings.ttl_seconds)
    )
    destinations = registry.parse_names(
        environment.get("DESTINATIONS", registry.DEFAULT_DESTINATIONS)
    )
    return InDoubtResolver(
        store, destinations, float(visibility_timeout_seconds * max_receive_count)
    )
