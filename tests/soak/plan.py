"""What a soak sends and which faults it meets, all drawn from one seed.

Faults at the destinations are keyed by the hit they concern (its soak id) and by how many
times that hit was seen there, not by the order of requests: batches form by timing, and the
same seed must still mean the same faults. Request-level faults fail every request that
carries a chosen hit (a "carrier"), whichever other events share the request.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Final
from urllib.parse import quote

from chalicelib.destinations import registry

# Every destination, so a destination added is soaked too: the stand-ins (pinpoint,
# customer-profiles) meet planned faults; the others run on moto and are read back.
DESTINATIONS: Final = registry.known()
EVENT_TYPES: Final = ("page_view", "add_to_cart", "purchase", "signup")

# Hits the pixel must refuse today (the soak checks they never reach anything).
INVALID: Final = (
    "event=&endpoint_id={ep}",  # empty event type
    "event=purchase",  # no endpoint id
    "event=purchase&endpoint_id={ep}&evmt_price=abc",  # a metric that is no number
    "event=purchase&endpoint_id={ep}&address=a%40b.example",  # a delivery field
    "event=purchase&endpoint_id={ep}&timestamp=yesterday",
    "event=purchase&endpoint_id={ep}&evat_long=" + "x" * 201,  # over Pinpoint's 200
)
# Hits issue 10 says must be refused (points 4 and 5): sent only with faults on.
HOSTILE: Final = (
    "event=purchase&endpoint_id={ep}&usat_plan=undefined",
    "event=purchase&endpoint_id={ep}&usat_plan=null",
    "event=purchase&endpoint_id={ep}&evat_name=%FF",
    "event=purchase&endpoint_id={ep}&evat_name=%ED%A0%80",
)
# Queue bodies the pixel would never have written (issue 10, point 1), and the field each
# breaks: each must be parked at decode with a reason naming that field.
POISON_FIELDS: Final = (
    ("timestamp", "2026-11-30 10:00:00 UTC"),
    ("timestamp", "yesterday"),
    ("timestamp", 1764496800),
    ("event_type", "e" * 120),
    ("event_type", ""),
    ("endpoint_id", ""),
    ("attributes", {"n": 1}),
    ("metrics", {"price": "9.5"}),
    ("user_attributes", {"plan": "gold"}),
    ("session", "s-1"),
)


@dataclass(frozen=True)
class PlannedHit:
    soak_id: str
    query: str
    meant_valid: bool
    slow_answers: int = 0  # SendMessage answers delayed past the pixel's read timeout


@dataclass
class Faults:
    """Per destination: soak id -> the statuses it is answered, one per sighting, before it
    is accepted (a final 4xx that botocore does not retry makes it a planned rejection)."""

    per_event: dict[str, dict[str, list[int]]] = field(default_factory=dict)
    # Pinpoint only: a request carrying this hit fails as a whole with these statuses.
    per_request: dict[str, list[int]] = field(default_factory=dict)
    planned_parks: set[tuple[str, str]] = field(default_factory=set)
    # Before hit number n: how many DeleteMessageBatch / SendMessageBatch answers to drop.
    dropped_answers: dict[int, tuple[str, int]] = field(default_factory=dict)


@dataclass
class Plan:
    seed: int
    hits: list[PlannedHit]
    poison: list[tuple[int, str, str, object]]  # (before hit n, soak id, field, value)
    faults: Faults
    slow_phase: range


def make_plan(seed: int, size: int, faults_on: bool = True) -> Plan:
    rng = random.Random(seed)
    endpoints = [f"ep-{n:04d}" for n in range(max(10, size // 10))]
    # A few dozen hits at full size; at CI size one of each kind and a few fast ones.
    slow_count = (6 if size < 2000 else 36) if faults_on else 0
    slow_start = size // 2
    slow_phase = range(slow_start, slow_start + slow_count)
    hits: list[PlannedHit] = []
    for n in range(size):
        soak_id = f"h{n}"
        endpoint = rng.choice(endpoints)
        roll = rng.random()
        if n not in slow_phase and roll < 0.08:
            template = rng.choice(INVALID)
            query = template.format(ep=endpoint) + f"&evat_soak={soak_id}"
            hits.append(PlannedHit(soak_id, query, meant_valid=False))
            continue
        if faults_on and n not in slow_phase and roll < 0.10:
            template = rng.choice(HOSTILE)
            query = template.format(ep=endpoint) + f"&evat_soak={soak_id}"
            hits.append(PlannedHit(soak_id, query, meant_valid=False))
            continue
        parts = [
            f"event={rng.choice(EVENT_TYPES)}",
            f"endpoint_id={endpoint}",
            f"evat_soak={soak_id}",
            f"evat_page={quote('/shop/' + rng.choice(['shoes', 'hats', 'bags']))}",
        ]
        if rng.random() < 0.5:
            parts.append(f"evmt_price={rng.randint(1, 500)}.{rng.randint(0, 99):02d}")
        if rng.random() < 0.2:
            parts.append(f"usat_plan={rng.choice(['gold', 'silver'])}")
        if rng.random() < 0.3:
            parts.append(f"session_id=s-{rng.randint(1, 10**9)}")
        parts.append(f"gtmcb={rng.randint(1, 10**9)}")
        slow = 0
        if n in slow_phase:
            # 1 slow answer: 200 with two copies; 2: 200 with three; 3: 503 with three.
            offset = n - slow_phase.start
            slow = (1, 2, 3)[offset] if offset < 3 else rng.choice((0, 1, 1, 2, 3))
        hits.append(PlannedHit(soak_id, "&".join(parts), meant_valid=True, slow_answers=slow))

    faults = Faults()
    poison: list[tuple[int, str, str, object]] = []
    if faults_on:
        for destination in DESTINATIONS:
            faults.per_event[destination] = {}
        for hit in hits:
            if not hit.meant_valid:
                continue
            # Pinpoint: per-event 500/429 (retried by the consumer), 400 (rejected).
            roll = rng.random()
            if roll < 0.05:
                faults.per_event["pinpoint"][hit.soak_id] = rng.choice([[500], [429], [500, 429]])
            elif roll < 0.07:
                faults.per_event["pinpoint"][hit.soak_id] = [400]
                faults.planned_parks.add((hit.soak_id, "pinpoint"))
            elif roll < 0.075:
                # Whole requests fail while they carry this hit: 403/404 are not retried by
                # botocore, so the consumer retries the request's events itself. (The
                # harness spaces these out: see Soak._batch_wide_allowed.)
                faults.per_request[hit.soak_id] = rng.choice([[403], [404], [403, 404]])
            # Customer Profiles: 403 fails the BatchPutProfileObject carrying the hit and stops
            # the rest of the batch's calls; 400 is that item's own rejection.
            roll = rng.random()
            if roll < 0.005:
                faults.per_event["customer-profiles"][hit.soak_id] = [403]
            elif roll < 0.02:
                faults.per_event["customer-profiles"][hit.soak_id] = [400]
                faults.planned_parks.add((hit.soak_id, "customer-profiles"))
        for n in rng.sample(range(size), k=max(2, size // 400)):
            faults.dropped_answers[n] = (
                rng.choice(["DeleteMessageBatch", "SendMessageBatch"]),
                rng.choice([1, 2, 3]),
            )
        for index, (name, value) in enumerate(POISON_FIELDS):
            poison.append((rng.randrange(size), f"p{index}", name, value))
    return Plan(seed, hits, poison, faults, slow_phase)
