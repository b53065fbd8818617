"""Hypothesis strategies for hits: query strings a hostile page or tool could send, and the
policies the pixel may run with. Shared by the hit and message property tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from hypothesis import strategies as st

from chalicelib.hits import PREFIXES, SINGLE_VALUED, HitPolicy

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
ALLOWED = frozenset({"lang", "tier", "a" * 50})
TRICKY = [
    "\x00", "\t", "\n", "\r", "\x1f", "\x7f", "\x85", "\xa0", "\u2028", "\u200b", "\ufeff",
    "\ud800", "\udbff", "\udc00", "\udfff", "\ufffd", "\ufffe", "\uffff", "\U0001fffe",
    "\U0010ffff", "\U0001f600", "\xe9", "\u0301", "\u0661", "\U0001d7d9", " ", "+", "%", "&",
    "=", "#", "_",
]  # fmt: skip
CHARACTER = st.one_of(st.characters(exclude_categories=()), st.sampled_from(TRICKY))
TEXT = st.one_of(
    st.text(CHARACTER, max_size=24), st.sampled_from(["e\u0301", "\ud83d\ude00", " x", "x "])
)
LONG = st.builds(
    lambda character, length: character * length,
    st.one_of(st.sampled_from(["a", "\xe9", "\U0001f600", " "]), CHARACTER),
    st.sampled_from([49, 50, 51, 99, 100, 101, 127, 128, 129, 199, 200, 201, 5000]),
)
NUMBER = st.one_of(
    st.floats().map(repr),
    st.integers().map(str),
    st.from_regex(r"\A[+-]?([0-9]{1,400}(\.[0-9]{0,5})?|\.[0-9]{1,5})([eE][+-]?[0-9]{1,4})?\Z"),
    st.sampled_from(
        ["1e309", "-1e309", "nan", "inf", "1_000", "\u0661\u0662", "0x10", ".5", "5.", "-0"]
    ),
)
OFFSET = st.integers(-23 * 60 - 59, 23 * 60 + 59).map(lambda m: timezone(timedelta(minutes=m)))
INSTANT = st.one_of(
    st.datetimes(
        min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30), timezones=OFFSET
    ).map(datetime.isoformat),
    st.datetimes(
        min_value=datetime(2026, 11, 26), max_value=datetime(2026, 11, 29), timezones=OFFSET
    ).map(lambda d: d.isoformat().replace("+", " ")),
    st.integers(0, 10**16).map(str),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+01:00",
            "0001-01-01T00:30:00+23:59",
            "9999-12-31T23:59:59-01:00",
            "9999-12-31T23:59:59.999999-23:59",
            "2026-11-28T12:00:00Z",
            "2026-11-28T12:00:00",
            "2026-11-28",
            "2026-W48-6T12:00:00Z",
            "999999999999999",
            "1764331200000",
        ]
    ),
)
VALUE = st.one_of(TEXT, LONG, NUMBER, INSTANT, st.sampled_from(["", "undefined", "null"]))
SINGLE = st.lists(VALUE, min_size=1, max_size=1)
# Mostly one value a name, as browsers send; sometimes the same name repeated.
VALUES = st.one_of(SINGLE, SINGLE, SINGLE, st.lists(VALUE, min_size=2, max_size=3))
PROFILE_NAME = st.sampled_from([*sorted(ALLOWED), "other", "Lang", "lang "])
NAME = st.one_of(
    st.sampled_from(
        [
            *SINGLE_VALUED,
            *PREFIXES,
            "gtmcb",
            "token",
            "Address",
            "channel_type",
            "opt_out",
            "OPT_OUT",
            "EndpointStatus",
            "evat",
            "EVAT_x",
        ]
    ),
    st.builds(str.__add__, st.sampled_from(PREFIXES), st.one_of(TEXT, LONG, PROFILE_NAME)),
    TEXT,
)
ANY_PARAMS = st.dictionaries(NAME, VALUES, max_size=12)
EVENT_TYPE = st.from_regex(r"\A[a-z.]{1,50}\Z")
ENDPOINT_ID = st.from_regex(r"\A[\x21-\x7e]{1,128}\Z")
VALID_BASE = st.fixed_dictionaries(
    {
        "event": st.lists(st.just("purchase") | EVENT_TYPE, min_size=1, max_size=1),
        "endpoint_id": st.lists(st.just("ep-1") | ENDPOINT_ID, min_size=1, max_size=1),
    }
)
MANY_KEYS = st.dictionaries(
    st.builds(str.__add__, st.sampled_from(["evat_", "evmt_"]), st.from_regex(r"\A[a-z]{1,8}\Z")),
    st.lists(st.sampled_from(["1", "x", "2.5"]), min_size=1, max_size=1),
    min_size=35,
    max_size=45,
)
PROFILE_PARAMS = st.dictionaries(
    st.builds(str.__add__, st.sampled_from(["usat_", "enat_", "enmt_"]), PROFILE_NAME),
    st.lists(st.one_of(VALUE, st.sampled_from(["de", "1", "x" * 100])), min_size=1, max_size=55),
    max_size=4,
)


def hits() -> st.SearchStrategy[dict[str, list[str]]]:
    """Valid hits with hostile additions (which may replace event and endpoint_id), and
    hostile hits outright."""
    additions = st.one_of(st.just({}), MANY_KEYS, PROFILE_PARAMS)
    hostile = st.dictionaries(NAME, VALUES, max_size=4)
    replaced = st.builds(lambda a, b, c: {**a, **b, **c}, VALID_BASE, additions, hostile)
    kept = st.builds(lambda a, b, c: {**c, **b, **a}, VALID_BASE, additions, hostile)
    return st.one_of(kept, kept, replaced, ANY_PARAMS)


POLICY = st.builds(
    HitPolicy,
    allowed_user_attributes=st.sets(st.sampled_from(sorted(ALLOWED))).map(frozenset),
    allowed_endpoint_attributes=st.sets(st.sampled_from(sorted(ALLOWED))).map(frozenset),
    allowed_endpoint_metrics=st.sets(st.sampled_from(sorted(ALLOWED))).map(frozenset),
    allow_anonymous_user_id=st.booleans(),
    strict_parameters=st.sampled_from([False, False, False, True]),
)
