"""Hypothesis strategies for queue messages: bodies the pixel could write, and bodies mangled
in every way a replay, a hand edit or a bug could mangle them."""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

from hypothesis import settings
from hypothesis import strategies as st

from chalicelib.events import Event, EventRecord, MessageError
from chalicelib.rules import format_instant
from tests.strategies.hits import TEXT

# Property tests over bodies: FUZZ_EXAMPLES=20000 for a deep local run; CI runs the same
# examples every time.
PROPERTIES = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "400")),
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
)
EMOJI = "\U0001f600"
HOSTILE_TEXT = st.sampled_from(
    [
        "",
        " ",
        "_session.start",
        "undefined",
        "null",
        "a b",
        "x\n",
        "\x00",
        "\ud800",
        "\ufffe",
        "e" * 51,
        "e" * 120,
        "x" * 129,
        "v" * 201,
        EMOJI * 26,
        EMOJI * 101,
        "\u00e9" * 101,
        "2026-11-30 10:00:00 UTC",
        "yesterday",
        "2026-11-28T10:00:00",
        "2026-11-28",
        "2026-02-30T10:00:00Z",
        "2026-11-28T10:00:00.000Z",
        "2026-11-28T11:00:00+01:00",
        "2026-11-28T10:00:00.1234567Z",
        "0001-01-01T00:00:00+01:00",
        "9999-12-31T23:59:59-01:00",
        "0001-01-01T00:00:00.000Z",
        "9999-12-31T23:59:59.999Z",
        "1764331200000",
        "2026-W48-6T10:00:00Z",
        "\u0662\u0660\u0662\u0666-11-28T10:00:00Z",
    ]
)
STRING = st.one_of(HOSTILE_TEXT, TEXT)
NUMBER = st.one_of(
    st.integers(-(10**20), 10**20),
    st.integers(10**300, 10**400),
    st.floats(),  # NaN and infinities included: json.dumps writes them, json.loads reads them
    st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
)
SCALAR = st.one_of(st.none(), st.booleans(), NUMBER, STRING)
ANY_JSON = st.recursive(
    SCALAR,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(STRING, inner, max_size=3),
    max_leaves=8,
)
GOOD_KEY = st.one_of(st.from_regex(r"\A[a-z_]{1,12}\Z"), st.sampled_from(["k" * 50, EMOJI * 25]))
KEY = st.one_of(GOOD_KEY, STRING)
INSTANT = st.datetimes(
    min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
).map(format_instant)
IDENTIFIER = st.from_regex(r"\A[\x21-\x7e]{1,128}\Z")
GOOD_VALUE = st.one_of(st.from_regex(r"\A[a-z0-9 ]{0,20}\Z"), st.just(EMOJI * 100))
GOOD_PROFILE_VALUE = st.one_of(st.from_regex(r"\A[a-z0-9]{1,20}\Z"), st.just("\u00e9" * 100))


def valid_document() -> st.SearchStrategy[dict[str, Any]]:
    """A body the pixel could have written."""
    return st.fixed_dictionaries(
        {
            "version": st.just(1),
            "event_id": IDENTIFIER,
            "event_type": st.from_regex(r"\A[a-z.]{1,50}\Z"),
            "endpoint_id": IDENTIFIER,
            "timestamp": INSTANT,
            "received_at": INSTANT,
            "session": st.one_of(
                st.none(),
                st.fixed_dictionaries(
                    {"id": IDENTIFIER, "start": st.just("2000-01-01T00:00:00.000Z")}
                ),
            ),
            "attributes": st.dictionaries(GOOD_KEY, GOOD_VALUE, max_size=4),
            "metrics": st.dictionaries(
                GOOD_KEY, st.floats(allow_nan=False, allow_infinity=False), max_size=4
            ),
            "user_id": st.one_of(st.none(), IDENTIFIER),
            "user_attributes": st.dictionaries(
                GOOD_KEY, st.lists(GOOD_PROFILE_VALUE, min_size=1, max_size=3), max_size=3
            ),
            "endpoint_attributes": st.dictionaries(
                GOOD_KEY, st.lists(GOOD_PROFILE_VALUE, min_size=1, max_size=3), max_size=3
            ),
            "endpoint_metrics": st.dictionaries(GOOD_KEY, st.integers(-5, 5), max_size=3),
        }
    )


MAP_FIELDS = ("attributes", "metrics", "user_attributes", "endpoint_attributes", "endpoint_metrics")
FIELDS = ("version", *EventRecord.__annotations__, "destinations")


@st.composite
def mutated_document(draw: st.DrawFn, names: tuple[str, ...] = FIELDS) -> dict[str, Any]:
    """A valid body with some fields replaced, removed, or given a hostile entry."""
    document = draw(valid_document())
    for name in draw(st.lists(st.sampled_from(names), max_size=3, unique=True)):
        how = draw(st.sampled_from(["replace", "remove", "entry", "many", "session"]))
        if how == "remove":
            document.pop(name, None)
        elif how == "entry" and name in MAP_FIELDS:
            value = draw(st.one_of(ANY_JSON, st.lists(STRING, max_size=3)))
            document[name] = {**document[name], draw(KEY): value}
        elif how == "many" and name in MAP_FIELDS:
            many = draw(st.integers(35, 260))
            value = ["v"] if name.endswith("attributes") and name != "attributes" else "v"
            document[name] = {f"k{i}": 1 if "metrics" in name else value for i in range(many)}
        elif how == "session":
            document["session"] = {
                "id": draw(st.one_of(IDENTIFIER, ANY_JSON)),
                "start": draw(st.one_of(INSTANT, STRING, ANY_JSON)),
            }
        else:
            document[name] = draw(ANY_JSON)
    if draw(st.booleans()):
        document[draw(STRING)] = draw(ANY_JSON)  # an unknown field: ignored by version 1
    return document


def body_of(document: Any, ascii_only: bool) -> str:
    return json.dumps(document, ensure_ascii=ascii_only, allow_nan=True)


BODIES = st.one_of(
    st.builds(body_of, mutated_document(), st.booleans()),
    st.builds(body_of, mutated_document(("session", *MAP_FIELDS)), st.booleans()),
    st.builds(body_of, ANY_JSON, st.booleans()),
    st.text(max_size=40),
)


def decoded(body: str) -> Event | None:
    """Event.from_message, or None for a poison message (which always says why); any other
    exception fails the test."""
    try:
        return Event.from_message(body)
    except MessageError as error:
        reason = str(error)
    assert reason  # a parked message always says why
    return None
