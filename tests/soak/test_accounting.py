"""The soak's bookkeeping on hand-made sightings: each outcome lands in its column, and
every broken promise is reported (a ledger that cannot fail would prove nothing)."""

from __future__ import annotations

from collections import Counter

from tests.soak.accounting import (
    ACCEPTED,
    QUEUED_ANYWAY,
    Hit,
    Letter,
    Sightings,
    account,
    soak_id_of_body,
)

DESTINATIONS = ("pinpoint", "archive")


def sightings(**overrides: object) -> Sightings:
    base: dict[str, object] = {
        "destinations": DESTINATIONS,
        "hits": [Hit("h1", 200)],
        "copies": {"h1": 1},
        "deliveries": {"pinpoint": Counter({"h1": 1}), "archive": Counter({"h1": 1})},
        "letters": [],
        "queued": [],
    }
    base.update(overrides)
    return Sightings(**base)  # type: ignore[arg-type]


def counts(seen: Sightings, destination: str, kind: str = ACCEPTED) -> dict[str, int]:
    ledger = account(seen)
    [row] = [r for r in ledger.rows if r.destination == destination and r.kind == kind]
    return {k: v for k, v in row.counts.items() if v}


def test_delivered_once_everywhere_balances() -> None:
    ledger = account(sightings())
    assert ledger.problems == []
    assert counts(sightings(), "pinpoint") == {"owed": 1, "once": 1}
    assert "pinpoint" in ledger.table()


def test_twice_is_a_broken_promise() -> None:
    seen = sightings(deliveries={"pinpoint": Counter({"h1": 2}), "archive": Counter(h1=1)})
    assert counts(seen, "pinpoint") == {"owed": 1, "twice": 1}
    assert account(seen).problems == ["h1 (200) delivered 2 times to pinpoint"]


def test_nothing_anywhere_is_lost() -> None:
    seen = sightings(deliveries={"pinpoint": Counter(), "archive": Counter(h1=1)})
    assert counts(seen, "pinpoint") == {"owed": 1, "lost": 1}
    assert account(seen).problems == ["h1 (200) lost for pinpoint"]


def test_a_planned_rejection_parked_with_its_reason_balances() -> None:
    letter = Letter("h1", ("pinpoint",), "pinpoint", "400 BadRequest")
    seen = sightings(
        deliveries={"pinpoint": Counter(), "archive": Counter(h1=1)},
        letters=[letter],
        planned_parks=frozenset({("h1", "pinpoint")}),
    )
    assert counts(seen, "pinpoint") == {"owed": 1, "parked": 1}
    assert counts(seen, "archive") == {"owed": 1, "once": 1}  # the letter names pinpoint
    assert account(seen).problems == []


def test_a_park_at_a_destination_that_accepts_the_event_is_reported() -> None:
    letter = Letter("h1", None, "decode", "timestamp: not ISO 8601")
    seen = sightings(deliveries={"pinpoint": Counter(), "archive": Counter()}, letters=[letter])
    assert counts(seen, "archive") == {"owed": 1, "parked": 1}
    assert len(account(seen).problems) == 2  # once per destination


def test_a_redriven_message_has_no_reason() -> None:
    seen = sightings(
        deliveries={"pinpoint": Counter(), "archive": Counter(h1=1)},
        letters=[Letter("h1", None, None, None)],
    )
    assert counts(seen, "pinpoint") == {"owed": 1, "parked, no reason": 1}
    # Delivered to archive, yet its message was redriven: the letter names every
    # destination, so it is reported there too.
    assert account(seen).problems == [
        "h1 (200) on the dead-letter queue with no reason",
        "h1 (200) delivered to archive and also parked for it (None: None)",
    ]


def test_a_profile_letter_does_not_park_the_event() -> None:
    letter = Letter("h1", ("pinpoint",), "pinpoint:profile", "endpoint refused")
    seen = sightings(letters=[letter])
    assert counts(seen, "pinpoint") == {"owed": 1, "once": 1}
    assert account(seen).problems == []


def test_a_copy_still_on_the_queue_is_owed_only_where_it_names() -> None:
    seen = sightings(
        deliveries={"pinpoint": Counter(), "archive": Counter(h1=1)},
        queued=[("h1", ("pinpoint",))],
    )
    assert counts(seen, "pinpoint") == {"owed": 1, "queued": 1}
    assert account(seen).problems == []


def test_a_503_is_owed_only_when_a_copy_landed() -> None:
    hits = [Hit("h1", 503), Hit("h2", 503)]
    seen = sightings(
        hits=hits,
        copies={"h1": 3},
        deliveries={"pinpoint": Counter(h1=2), "archive": Counter(h1=1)},
    )
    assert counts(seen, "pinpoint", QUEUED_ANYWAY) == {"owed": 1, "twice": 1}
    assert counts(seen, "archive", QUEUED_ANYWAY) == {"owed": 1, "once": 1}
    assert account(seen).problems == ["h1 (503, queued) delivered 2 times to pinpoint"]


def test_a_refused_hit_must_reach_nothing() -> None:
    seen = sightings(
        hits=[Hit("h1", 400, meant_valid=False)],
        copies={},
        deliveries={"pinpoint": Counter(h1=1), "archive": Counter()},
    )
    assert account(seen).rows == []
    assert account(seen).problems == ["h1 was refused, yet delivered to pinpoint"]


def test_an_invalid_hit_answered_200_is_reported() -> None:
    seen = sightings(hits=[Hit("h1", 200, meant_valid=False)])
    assert account(seen).problems == ["1 invalid hits answered 200: h1"]


def test_poison_must_be_parked_at_decode_naming_its_field() -> None:
    good = Letter("p0", None, "decode", "timestamp must be ISO 8601")
    assert account(sightings(letters=[good], poison={"p0": "timestamp"})).problems == []
    redriven = Letter("p0", None, None, None)
    [problem] = account(sightings(letters=[redriven], poison={"p0": "timestamp"})).problems
    assert "not parked at decode naming 'timestamp'" in problem


def test_problem_kinds_leave_ids_out() -> None:
    seen = sightings(deliveries={"pinpoint": Counter(h1=3), "archive": Counter()})
    assert account(seen).problem_kinds() == Counter(
        {"(200) delivered times to pinpoint": 1, "(200) lost for archive": 1}
    )


def test_bodies_are_attributed_leniently() -> None:
    assert soak_id_of_body('{"attributes":{"soak":"h3"},"destinations":["pinpoint"]}') == (
        "h3",
        ("pinpoint",),
    )
    assert soak_id_of_body('{"attributes":{"soak":"h3"}}') == ("h3", None)
    assert soak_id_of_body("not json") == (None, None)
    assert soak_id_of_body('{"attributes":"x"}') == (None, None)
