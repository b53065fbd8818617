"""At most once per destination for copies of one event: a memory of what was delivered.

The pixel's SQS client retries a `SendMessage` whose answer came later than its read timeout,
and SQS may have taken the first attempt: one hit, two or three messages, all with the same
`event_id` (assigned once per hit) and `endpoint_id`. Replays and requeued copies can meet
their originals too. `Deduplicated` wraps a destination and answers DELIVERED, without
sending, for an event that destination already answered DELIVERED:

- a bounded memory per container (at least the last DEDUPE_MEMORY_SIZE keys of
  `(destination, endpoint_id, event_id)`), always on;
- optionally a DynamoDB table shared by every container (`DEDUPE_TABLE`), read before each
  call and written after it, whose items expire after `DEDUPE_TTL_SECONDS`.

Being wrong must cost a duplicate, never an event: a store that cannot be read means the
events are sent (at least once, as without it); a store that cannot be written after a
delivery means a later copy may be sent again. Both are counted. An event is remembered
only when the destination recorded it and its profile update (if any) alike: a copy parked
for its failed profile update must reach the destination again when it is replayed.

What this does not cover: two copies handled at the same moment by two containers (each
reads "not seen" before the other writes). docs/operations.md says so.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import telemetry
from chalicelib.env import ConfigError, Reader
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, Recipient, TimeLeft, Verdict
from chalicelib.table_reads import ConsistentReads, TableUnreadableError

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

Key = tuple[str, str]  # (endpoint_id, event_id)

# DynamoDB's own limit per BatchWriteItem (reads: chalicelib.table_reads).
BATCH_WRITE_LIMIT: Final = 25
# Rounds of UnprocessedKeys/UnprocessedItems (throttling) before giving up on the rest.
STORE_ROUNDS: Final = 3
# No store call starts with less Lambda time left: the worst call (2 attempts of 1 s to
# connect and 2 s to read, and backoff: 6.5 s) plus the 8 s that env.call_budget_ms also
# keeps for settling the batch, which needs the time more than the table does.
STORE_CALL_BUDGET_MS: Final = 15_000
# The memory's cost, a configured entry at its worst (RecentDeliveries holds up to twice
# its capacity): peak RSS measured by `make bench` (bench/dedupe_memory.py) over capacities
# of 50,000 to 2,000,000 fed six times their capacity in new keys, 267 at worst (700,000),
# which is what two sets of 16-byte digests come to in theory (about 260), rounded up.
MEMORY_BYTES_PER_ENTRY: Final = 300
# Of the consumer's memory (its lambda_memory_size), the share the memory may take; the
# rest is the runtime with every destination's client (66 MB measured by `make bench`) and
# a batch, which Lambda caps at 6 MB of payload.
MEMORY_SHARE: Final = 0.5
DEFAULT_MEMORY_SIZE: Final = 100_000


def memory_problem(entries: int, memory_mb: int, whose: str) -> str | None:
    """Why DEDUPE_MEMORY_SIZE=`entries` cannot fit a consumer of `memory_mb` MB (`whose`
    names that setting), or None: its worst case must stay within MEMORY_SHARE of it."""
    needed = entries * MEMORY_BYTES_PER_ENTRY
    allowed = int(memory_mb * 1024 * 1024 * MEMORY_SHARE)
    if needed <= allowed:
        return None
    fitting = allowed // MEMORY_BYTES_PER_ENTRY
    return (
        f"{entries:,} remembered deliveries take up to {needed / 2**20:,.0f} MB"
        f" ({MEMORY_BYTES_PER_ENTRY} bytes each at worst, measured by make bench), more than"
        f" half of the consumer's {memory_mb} MB ({whose}): lower DEDUPE_MEMORY_SIZE to"
        f" {fitting:,} or less, or raise {whose}"
    )


@dataclass(frozen=True)
class DedupeSettings:
    """The consumer's memory of delivered events: the per-container memory's size, and the
    optional shared DynamoDB table with its items' lifetime."""

    memory_size: int = DEFAULT_MEMORY_SIZE
    table: str | None = None
    ttl_seconds: int = 18 * 86_400  # the events queue's 4 days + the dead-letter queue's 14

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> DedupeSettings:
        reader = Reader(environ)
        table = environ.get("DEDUPE_TABLE", "").strip()
        if table:
            # A table's own name (requests take an ARN too; the policy grants a name).
            from chalicelib.service_models import shape_rule

            reader.modelled("DEDUPE_TABLE", shape_rule("dynamodb", "TableName"))
        memory_size = reader.integer(
            "DEDUPE_MEMORY_SIZE", default=DEFAULT_MEMORY_SIZE, low=0, high=2_000_000
        )
        # In Lambda, against the function's own memory (deploy checks config.json's first).
        function_mb = environ.get("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "").strip()
        if function_mb.isdigit():
            problem = memory_problem(
                memory_size, int(function_mb), "AWS_LAMBDA_FUNCTION_MEMORY_SIZE"
            )
            if problem is not None:
                raise ConfigError("DEDUPE_MEMORY_SIZE", problem)
        return cls(
            memory_size=memory_size,
            table=table or None,
            ttl_seconds=reader.integer(
                "DEDUPE_TTL_SECONDS", default=18 * 86_400, low=3600, high=365 * 86_400
            ),
        )


def key_of(event: Event) -> Key:
    return (event.endpoint_id, event.event_id)


def same_occurrence(first: Event, second: Event) -> bool:
    """Two messages for one (endpoint id, event id) describe the same event. Times aside (a
    resend is received later, and without a `timestamp` parameter stamped later), and what
    the consumer itself changes on a requeued copy: the destinations still owed, and the
    profile update, stripped from a copy because it had already landed. Only a copy (it
    names its destinations) may lack the update: two hits that differ in it are two events."""
    if first.profile != second.profile:
        stripped = first if first.profile.is_empty() else second
        if not stripped.profile.is_empty() or stripped.destinations is None:
            return False
    return (
        replace(
            second,
            timestamp=first.timestamp,
            received_at=first.received_at,
            client_timestamp=first.client_timestamp,
            destinations=first.destinations,
            profile=first.profile,
        )
        == first
    )


def deliver_once_each(
    events: Sequence[Event], deliver: Callable[[Sequence[Event]], list[Outcome]]
) -> list[Outcome]:
    """`deliver`'s outcomes for `events`, each event sent once: a second message for the same
    event in one batch (a resend, a redelivery, a requeued copy meeting its original) shares
    the first one's outcome. A requeued copy whose profile update already landed stands for
    both, so the update is not written again."""
    groups: dict[Key, list[int]] = {}  # key -> the groups' numbers
    sender: list[int] = []  # per group: the event sent for the whole group
    group_of: list[int] = []
    for index, event in enumerate(events):
        candidates = groups.setdefault(key_of(event), [])
        for group in candidates:
            first = events[sender[group]]
            if same_occurrence(first, event):
                if event.profile.is_empty() and not first.profile.is_empty():
                    sender[group] = index  # the stripped copy: its update landed before
                break
        else:
            group = len(sender)
            candidates.append(group)
            sender.append(index)
        group_of.append(group)
    sent = deliver([events[i] for i in sender])
    outcomes: list[Outcome] = []
    for event, group in zip(events, group_of, strict=True):
        outcome = sent[group]
        if event.profile != events[sender[group]].profile:
            # A copy stood for its original (or the reverse): the update had landed.
            outcome = replace(outcome, profile=None, profile_reason="")
        outcomes.append(outcome)
    if len(sender) < len(events):
        telemetry.count("DuplicatesInBatch", len(events) - len(sender))
    return outcomes


class RecentDeliveries:
    """The deliveries a container made lately: at least the last `capacity` distinct ones
    (a key found again counts as new), at most twice that. One memory shared by every
    destination (each key names its destination), so its cost does not grow with fan-out.

    Two generations of sets of 16-byte digests: keys go into the young one; once it holds
    `capacity`, it becomes the old one and the old one is dropped whole; a key found in the
    old one moves to the young one. Its memory has a ceiling however many new ids it is fed
    (MEMORY_BYTES_PER_ENTRY a configured entry, measured by `make bench`): an OrderedDict,
    an exact LRU, measured 174 bytes a key once full and grew to 416 after ten turns of new
    ids, the pattern of an attacker flushing it (docs/performance.md#the-dedupe-memory)."""

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError("capacity must be 0 or more")
        self._capacity = capacity
        self._young: set[bytes] = set()
        self._old: set[bytes] = set()

    def __len__(self) -> int:
        return len(self._young) + len(self._old)

    def __contains__(self, key: object) -> bool:
        if not isinstance(key, bytes):
            return False
        if key in self._young:
            return True
        if key not in self._old:
            return False
        self.add(key)  # seen again: kept another generation
        return True

    def add(self, key: bytes) -> None:
        if not self._capacity:
            return
        self._old.discard(key)
        self._young.add(key)
        if len(self._young) >= self._capacity:
            self._old, self._young = self._young, set()


class StoreUnavailableError(RuntimeError):
    """When the shared store could not answer (or not in the time left)."""


class DeliveryStore(Protocol):
    """Keys delivered to a destination, shared across containers."""

    def seen(self, destination: str, keys: Sequence[Key], time_left: TimeLeft) -> set[Key]:
        """The keys already recorded; raises StoreUnavailableError if it cannot tell."""
        ...

    def record(self, destination: str, keys: Sequence[Key], time_left: TimeLeft) -> int:
        """Record keys; return how many could not be recorded."""
        ...


def fingerprint(destination: str, key: Key) -> bytes:
    """A delivery's identity as 16 bytes: small in memory, no endpoint or event id kept in
    the table, and no separator inside an id can make two keys collide (the parts are
    length-prefixed). 128 bits: a false match, which would drop an event, never happens in
    practice (about 1e-29 for 100,000 remembered keys)."""
    digest = hashlib.blake2b(digest_size=16)
    for part in (destination, *key):
        raw = part.encode("utf-8", "surrogatepass")
        digest.update(len(raw).to_bytes(4, "big"))
        digest.update(raw)
    return digest.digest()


class DynamoDeliveryStore:
    """A DynamoDB table (partition key `id`, string; TTL attribute `expires_at`): one
    consistent BatchGetItem per 100 events before sending, one BatchWriteItem per 25
    delivered events after. DynamoDB deletes expired items within days, so an item past
    `expires_at` is ignored when read."""

    def __init__(
        self,
        client: DynamoDBClient,
        table: str,
        ttl_seconds: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._table = table
        self._reads = ConsistentReads(
            client, table, rounds=STORE_ROUNDS, min_time_ms=STORE_CALL_BUDGET_MS
        )
        self._ttl_seconds = ttl_seconds
        self._clock = clock

    def seen(self, destination: str, keys: Sequence[Key], time_left: TimeLeft = None) -> set[Key]:
        by_id = {fingerprint(destination, key).hex(): key for key in keys}
        now = int(self._clock())
        try:
            return {
                by_id[str(item["id"]["S"])]
                for item in self._reads.held_items(list(by_id), "id, expires_at", time_left)
                if int(item.get("expires_at", {}).get("N", now + 1)) > now
            }
        except TableUnreadableError as error:
            raise StoreUnavailableError(str(error)) from error

    def record(self, destination: str, keys: Sequence[Key], time_left: TimeLeft = None) -> int:
        expires = str(int(self._clock()) + self._ttl_seconds)
        ids = list(dict.fromkeys(fingerprint(destination, key).hex() for key in keys))
        unrecorded = 0
        for start in range(0, len(ids), BATCH_WRITE_LIMIT):
            pending: list[Any] = [
                {"PutRequest": {"Item": {"id": {"S": i}, "expires_at": {"N": expires}}}}
                for i in ids[start : start + BATCH_WRITE_LIMIT]
            ]
            for _ in range(STORE_ROUNDS):
                try:
                    _check_time(time_left)
                    response = self._client.batch_write_item(RequestItems={self._table: pending})
                except (BotoCoreError, ClientError, StoreUnavailableError):
                    break
                pending = list(response.get("UnprocessedItems", {}).get(self._table, []))
                if not pending:
                    break
            unrecorded += len(pending)
        return unrecorded


def _check_time(time_left: TimeLeft) -> None:
    if time_left is not None and time_left() < STORE_CALL_BUDGET_MS:
        raise StoreUnavailableError("out of time")


@dataclass(frozen=True)
class _Plan:
    """Which events of a call are sent, and whose outcome every other one takes."""

    sent: list[int]  # indexes into the events, one per distinct key still to send
    copies: dict[int, int]  # index of a copy -> index of the event sent for it


class Deduplicated:
    """A destination that receives each `(endpoint_id, event_id)` once (see module doc)."""

    def __init__(
        self,
        destination: Recipient,
        memory: RecentDeliveries,
        store: DeliveryStore | None = None,
    ) -> None:
        self.name = destination.name
        self._destination = destination
        self._memory = memory
        self._store = store

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        outcomes: list[Outcome | None] = [None] * len(events)
        skipped = {"memory": 0, "store": 0, "batch": 0}
        fresh: list[int] = []
        for index, event in enumerate(events):
            if self._remembers(event):
                outcomes[index] = DELIVERED
                skipped["memory"] += 1
            else:
                fresh.append(index)
        fresh = self._not_in_store(events, fresh, outcomes, skipped, time_left)
        plan = _plan(events, fresh)
        skipped["batch"] = len(plan.copies)
        answers = self._destination.deliver([events[i] for i in plan.sent], time_left)
        for index, outcome in zip(plan.sent, answers, strict=True):
            outcomes[index] = outcome
        for copy, original in plan.copies.items():
            outcomes[copy] = _for_copy(events[copy], outcomes[original] or DELIVERED)
        delivered = [
            key_of(events[index])
            for index, outcome in zip(plan.sent, answers, strict=True)
            if _fully_delivered(outcome)
        ]
        for key in delivered:
            self._memory.add(fingerprint(self.name, key))
        self._record(delivered, time_left)
        self._count(skipped)
        return [outcome or DELIVERED for outcome in outcomes]

    def _remembers(self, event: Event) -> bool:
        return fingerprint(self.name, key_of(event)) in self._memory

    def _not_in_store(
        self,
        events: Sequence[Event],
        fresh: list[int],
        outcomes: list[Outcome | None],
        skipped: dict[str, int],
        time_left: TimeLeft,
    ) -> list[int]:
        """The events of `fresh` the shared store has not seen (all of them if it cannot say)."""
        if self._store is None or not fresh:
            return fresh
        try:
            seen = self._store.seen(self.name, [key_of(events[i]) for i in fresh], time_left)
        except StoreUnavailableError as error:
            telemetry.count_for_destination("DedupeStoreReadFailures", self.name, len(fresh))
            telemetry.logger.warning(
                "dedupe store not read; sending anyway",
                extra={"destination": self.name, "events": len(fresh), "error": str(error)},
            )
            return fresh
        rest: list[int] = []
        for index in fresh:
            key = key_of(events[index])
            if key in seen:
                outcomes[index] = DELIVERED
                skipped["store"] += 1
                self._memory.add(fingerprint(self.name, key))
            else:
                rest.append(index)
        return rest

    def _record(self, delivered: list[Key], time_left: TimeLeft) -> None:
        if self._store is None or not delivered:
            return
        unrecorded = self._store.record(self.name, delivered, time_left)
        if unrecorded:
            telemetry.count_for_destination("DedupeStoreWriteFailures", self.name, unrecorded)
            telemetry.logger.warning(
                "dedupe store not written; a later copy may be delivered again",
                extra={"destination": self.name, "events": unrecorded},
            )

    def _count(self, skipped: dict[str, int]) -> None:
        total = sum(skipped.values())
        if not total:
            return
        telemetry.count_for_destination("DuplicatesSkipped", self.name, total)
        telemetry.logger.info(
            "duplicates skipped", extra={"destination": self.name, "found_in": skipped}
        )


def _plan(events: Sequence[Event], indexes: list[int]) -> _Plan:
    """One event sent per key. Of copies in one call the one carrying a profile update is
    sent (a requeued copy may have had its update stripped); the others take its outcome."""
    groups: dict[Key, list[int]] = {}
    for index in indexes:
        groups.setdefault(key_of(events[index]), []).append(index)
    sent: list[int] = []
    copies: dict[int, int] = {}
    for members in groups.values():
        chosen = next((i for i in members if not events[i].profile.is_empty()), members[0])
        sent.append(chosen)
        copies.update({i: chosen for i in members if i != chosen})
    sent.sort()  # the destination sees events in queue order
    return _Plan(sent, copies)


def _for_copy(event: Event, outcome: Outcome) -> Outcome:
    """The outcome of the event sent for `event`, without a profile verdict for a copy that
    carries no profile update (it wrote nothing to a profile)."""
    if event.profile.is_empty() and outcome.profile is not None:
        return replace(outcome, profile=None, profile_reason="")
    return outcome


def _fully_delivered(outcome: Outcome) -> bool:
    return outcome.verdict is Verdict.DELIVERED and outcome.profile in (None, Verdict.DELIVERED)
