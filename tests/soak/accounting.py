"""The soak's ledger: what became of every hit at every destination, and what must not be.

Pure data in, a table and a list of broken promises out, so the bookkeeping itself is tested
apart from the pipeline (tests/soak/test_accounting.py). Every hit carries its own soak id
(`evat_soak=h17`), which travels inside the event to every destination, into requeued copies
and onto the dead-letter queue, so each sighting is attributed without trusting event ids.

A hit is owed to every destination once its answer is 200 ("accepted"), or once a copy of it
reached the queue although the pixel answered 503 ("503, queued anyway": the slow-SQS path).
For each (hit, destination) it then ends as exactly one of:

- delivered once: the destination recorded it once (it answered success each time it recorded
  it: the soak never loses a destination's answer);
- delivered twice: recorded more than once — a broken promise;
- parked with a reason: not recorded, and on the dead-letter queue with `rejection_reason`
  for this destination (stage `decode` and `routing` count for every destination they name);
- parked without a reason: not recorded, on the dead-letter queue by the redrive policy only;
- still queued: not recorded, but a message owing it to this destination is still on the queue;
- lost: none of these — a broken promise.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final

ACCEPTED: Final = "200"
QUEUED_ANYWAY: Final = "503, queued"
COLUMNS: Final = (
    "owed",
    "once",
    "twice",
    "parked",
    "parked, no reason",
    "queued",
    "lost",
)


@dataclass(frozen=True)
class Hit:
    """One pixel hit: its soak id, the pixel's answer, and what the soak meant it to be."""

    soak_id: str
    status: int
    meant_valid: bool = True


@dataclass(frozen=True)
class Letter:
    """One dead-letter message, as the soak read it back."""

    soak_id: str | None
    destinations: tuple[str, ...] | None  # None: every destination (the body names none)
    stage: str | None  # `rejected_at_stage`; None when the redrive policy moved it
    reason: str | None  # `rejection_reason`


@dataclass(frozen=True)
class Sightings:
    """Everything observed at the end of a soak."""

    destinations: tuple[str, ...]
    hits: Sequence[Hit]
    copies: Mapping[str, int]  # soak id -> pixel messages that reached the queue
    deliveries: Mapping[str, Counter[str]]  # destination -> soak id -> times recorded
    letters: Sequence[Letter]
    queued: Sequence[tuple[str, tuple[str, ...] | None]]  # (soak id, destinations owed)
    planned_parks: frozenset[tuple[str, str]] = frozenset()  # (soak id, destination)
    poison: Mapping[str, str] = field(default_factory=dict)  # soak id -> field it breaks


@dataclass
class Row:
    destination: str
    kind: str
    counts: Counter[str] = field(default_factory=Counter)


@dataclass
class Ledger:
    rows: list[Row]
    problems: list[str]
    summary: list[str]

    def problem_kinds(self) -> Counter[str]:
        """Broken promises by kind (the soak id and details left out), for a short report."""
        kinds: Counter[str] = Counter()
        for problem in self.problems:
            words = problem.split(":")[0].split()
            kinds[" ".join(w for w in words if not re.fullmatch(r"[hp][0-9]+|[0-9]+", w))] += 1
        return kinds

    def table(self) -> str:
        header = ("destination", "hits", *COLUMNS)
        lines = [
            (row.destination, row.kind, *(str(row.counts[c]) for c in COLUMNS)) for row in self.rows
        ]
        widths = [max(len(x) for x in column) for column in zip(header, *lines, strict=True)]

        def fmt(cells: Sequence[str]) -> str:
            return "  ".join(
                cell.ljust(w) if i < 2 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            )

        rule = "  ".join("-" * w for w in widths)
        return "\n".join([*self.summary, fmt(header), rule, *(fmt(line) for line in lines)])


def soak_id_of_body(body: str) -> tuple[str | None, tuple[str, ...] | None]:
    """(soak id, destinations named) of a queue message body, read leniently: a poison body
    is whatever the soak wrote, and must still be attributed."""
    try:
        document = json.loads(body)
    except ValueError:
        return None, None
    if not isinstance(document, dict):
        return None, None
    attributes = document.get("attributes")
    soak_id = attributes.get("soak") if isinstance(attributes, dict) else None
    names = document.get("destinations")
    destinations = tuple(str(n) for n in names) if isinstance(names, list) and names else None
    return (soak_id if isinstance(soak_id, str) else None), destinations


def _parked_for(letter: Letter, destination: str) -> bool:
    """Does this letter hold the event for `destination` (not only its profile update)?"""
    if letter.stage is not None and letter.stage.endswith(":profile"):
        return False  # the event was delivered; its profile update is what is kept
    if letter.stage not in (None, "decode", "routing") and letter.stage != destination:
        return False
    return letter.destinations is None or destination in letter.destinations


def account(seen: Sightings) -> Ledger:
    """The ledger of a soak: one row per destination and kind of hit, and every violation."""
    problems: list[str] = []
    owed: dict[str, str] = {}  # soak id -> kind
    refused: list[str] = []
    for hit in seen.hits:
        if hit.status == 200:
            owed[hit.soak_id] = ACCEPTED
        elif seen.copies.get(hit.soak_id, 0) > 0:
            owed[hit.soak_id] = QUEUED_ANYWAY
        else:
            refused.append(hit.soak_id)
    parked: dict[tuple[str, str], list[Letter]] = {}
    for letter in seen.letters:
        if letter.soak_id is None:
            problems.append(f"a dead letter the soak cannot attribute: {letter}")
            continue
        for destination in seen.destinations:
            if _parked_for(letter, destination):
                parked.setdefault((letter.soak_id, destination), []).append(letter)
    queued: set[tuple[str, str]] = set()
    for soak_id, names in seen.queued:
        for destination in names or seen.destinations:
            queued.add((soak_id, destination))

    rows: list[Row] = []
    for destination in seen.destinations:
        delivered = seen.deliveries.get(destination, Counter())
        by_kind = {kind: Row(destination, kind) for kind in (ACCEPTED, QUEUED_ANYWAY)}
        for soak_id, kind in owed.items():
            counts = by_kind[kind].counts
            counts["owed"] += 1
            times = delivered[soak_id]
            letters = parked.get((soak_id, destination), [])
            if times > 1:
                counts["twice"] += 1
                problems.append(f"{soak_id} ({kind}) delivered {times} times to {destination}")
            elif times == 1:
                counts["once"] += 1
                if letters:
                    problems.append(
                        f"{soak_id} ({kind}) delivered to {destination} and also parked for it"
                        f" ({letters[0].stage}: {letters[0].reason})"
                    )
            elif any(letter.reason for letter in letters):
                counts["parked"] += 1
                if (soak_id, destination) not in seen.planned_parks:
                    problems.append(
                        f"{soak_id} ({kind}) parked for {destination}, which accepts it:"
                        f" {letters[0].stage}: {letters[0].reason}"
                    )
            elif letters:
                counts["parked, no reason"] += 1
                problems.append(f"{soak_id} ({kind}) on the dead-letter queue with no reason")
            elif (soak_id, destination) in queued:
                counts["queued"] += 1
            else:
                counts["lost"] += 1
                problems.append(f"{soak_id} ({kind}) lost for {destination}")
        rows.extend(row for row in by_kind.values() if row.counts["owed"])
        for soak_id in refused:
            if delivered[soak_id]:
                problems.append(f"{soak_id} was refused, yet delivered to {destination}")
        for soak_id in seen.poison:
            if delivered[soak_id]:
                problems.append(f"poison message {soak_id} delivered to {destination}")

    for soak_id in refused:
        if any(letter.soak_id == soak_id for letter in seen.letters):
            problems.append(f"{soak_id} was refused, yet is on the dead-letter queue")
    for soak_id, field_name in seen.poison.items():
        letters = [x for x in seen.letters if x.soak_id == soak_id]
        if not any(x.stage == "decode" and field_name in (x.reason or "") for x in letters):
            found = ", ".join(f"{x.stage}: {x.reason}" for x in letters) or "nothing"
            problems.append(
                f"poison message {soak_id} not parked at decode naming {field_name!r}"
                f" (found {found})"
            )
    wrong = [h.soak_id for h in seen.hits if not h.meant_valid and h.status == 200]
    if wrong:
        problems.append(f"{len(wrong)} invalid hits answered 200: {', '.join(wrong[:10])}")

    statuses = Counter(hit.status for hit in seen.hits)
    copies = Counter(seen.copies.get(h.soak_id, 0) for h in seen.hits if h.status == 200)
    summary = [
        f"hits: {len(seen.hits)} ("
        + ", ".join(f"{n} answered {s}" for s, n in sorted(statuses.items()))
        + f"); {sum(1 for h in seen.hits if not h.meant_valid)} meant invalid",
        "accepted hits by copies on the queue: "
        + ", ".join(f"{n}x {c}" for c, n in sorted(copies.items())),
        f"503 hits queued anyway: {sum(1 for kind in owed.values() if kind == QUEUED_ANYWAY)}",
        f"poison messages: {len(seen.poison)}; planned rejections: {len(seen.planned_parks)}",
    ]
    return Ledger(rows, problems, summary)
