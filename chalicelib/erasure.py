"""Erasure (GDPR, CCPA): the suppression list the consumer checks, so that nothing of a
forgotten visitor is delivered anywhere once `make ops ARGS="forget ..."` has listed them.

The list is a DynamoDB table (`ERASURE_TABLE`, partition key `id`, a string), one item per
forgotten id. The key is a digest of the id's kind (`endpoint_id` or `user_id`) and value,
never the id itself: the list must not become a record of who asked to be forgotten. The
operator's command writes it (`devtools/ops/forget.py`); the consumer only reads it.

The consumer asks once per batch, before any destination sees an event: one strongly
consistent `BatchGetItem` per 100 distinct ids (the batch's endpoint ids and user ids), so
a write the operator's command finished is seen by every batch read after it. An event any
of whose ids is listed is dropped: settled as done, counted `EventsErased`, never parked,
never retried, never sent. Being above fan-out, dedupe and consent, the check meets every
message alike: a first copy, a resend in the same batch, a copy requeued for the
destinations still owed, a replay from the dead-letter queue.

When the list cannot be read (unreachable, throttled past its rounds, or too little Lambda
time left), the batch's events are retried, not delivered: an event of a forgotten visitor
must not slip through because the table was slow. A long outage moves them to the
dead-letter queue through the redrive policy; a replay brings them back through the same
check. With `ERASURE_TABLE` unset, the consumer makes no look-up at all. docs/erasure.md
has the whole story.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final, Literal

from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.table_reads import ConsistentReads, TableUnreadableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

    from chalicelib.outcomes import TimeLeft

TABLE_VARIABLE: Final = "ERASURE_TABLE"
Kind = Literal["endpoint_id", "user_id"]
KINDS: Final[tuple[Kind, ...]] = ("endpoint_id", "user_id")

# Rounds of UnprocessedKeys (throttling) before the list counts as unreadable.
READ_ROUNDS: Final = 3
# No look-up starts with less Lambda time left: its worst call (2 attempts of 1 s to connect
# and 2 s to read, with backoff: 6.5 s) and the 8 s settling the batch keeps in reserve.
READ_BUDGET_MS: Final = 15_000


@dataclass(frozen=True)
class ErasureSettings:
    """The suppression list's table; None: erasure is off and nothing is looked up."""

    table: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> ErasureSettings:
        table = environ.get(TABLE_VARIABLE, "").strip()
        # DynamoDB's table name pattern and length (botocore's model).
        if table and not re.fullmatch(r"[a-zA-Z0-9_.-]{3,255}", table):
            raise ConfigError(
                TABLE_VARIABLE, "must be 3 to 255 letters, digits and _ . - (a DynamoDB table)"
            )
        return cls(table=table or None)


def suppression_key(kind: Kind, value: str) -> str:
    """The list's key for one id: 16 bytes of BLAKE2b over the kind and the value, each
    length-prefixed (no separator inside an id can make two keys collide), as hex."""
    digest = hashlib.blake2b(digest_size=16, person=b"pixel-relay-ers1")
    for part in (kind, value):
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
    return digest.hexdigest()


def event_keys(event: Event) -> list[str]:
    """The keys an event is suppressed by: its endpoint id's, and its user id's if any."""
    keys = [suppression_key("endpoint_id", event.endpoint_id)]
    if event.profile.user_id:
        keys.append(suppression_key("user_id", event.profile.user_id))
    return keys


class SuppressionUnavailableError(RuntimeError):
    """When the suppression list could not be read (or not in the time left)."""


class SuppressionList:
    """The consumer's reading of the list: which events of a batch are of forgotten
    visitors."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._reads = ConsistentReads(client, table, rounds=READ_ROUNDS, min_time_ms=READ_BUDGET_MS)

    def erased(self, events: Sequence[Event], time_left: TimeLeft = None) -> set[int]:
        """Indexes of the events whose endpoint id or user id is listed; raises
        SuppressionUnavailableError when the list cannot say."""
        keys_of = [event_keys(event) for event in events]
        listed = self.listed(list(dict.fromkeys(k for keys in keys_of for k in keys)), time_left)
        return {i for i, keys in enumerate(keys_of) if any(k in listed for k in keys)}

    def listed(self, keys: Sequence[str], time_left: TimeLeft = None) -> set[str]:
        """The keys on the list: one strongly consistent BatchGetItem per 100 keys."""
        try:
            return {str(item["id"]["S"]) for item in self._reads.held_items(keys, "id", time_left)}
        except TableUnreadableError as error:
            raise SuppressionUnavailableError(str(error)) from error
