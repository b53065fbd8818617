"""The answer builders that may run after a hit is on the queue (the beacon's report, the
CORS headers), and the refusal, with hostile values: whatever they are given, Chalice takes
the answer as it is (no header with a line break, a body it can encode), so an answer built
after the send is never turned into a 500 (tests/integration/test_answer_after_send.py
walks the steps after the send)."""

from __future__ import annotations

import os
import re

from chalice.app import Chalice, Response
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chalicelib.hits import HitPolicy
from chalicelib.origins import OriginPolicy
from chalicelib.pixel import Gate
from chalicelib.responses import beacon_report, pixel, refused, with_cors
from devtools.api_gateway import pixel_event

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
)
ANY_TEXT = st.text(st.characters(exclude_categories=()), max_size=80)
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
APP = Chalice(app_name="answers")
APP.api.binary_types = ["*/*"]  # as app.py declares
_ANSWER: list[Response] = []


@APP.route("/events")
def _answer() -> Response:
    return _ANSWER[-1]


def assert_chalice_takes(response: Response) -> None:
    """Through Chalice's own request handling, as Lambda invokes it: its checks of the
    view's answer (a header value with a line break is a 500) and the proxy response."""
    _ANSWER.append(response)
    proxy = APP(pixel_event("", {"Accept": "*/*"}), None)
    assert proxy["statusCode"] == response.status_code, proxy
    for name, value in proxy["headers"].items():
        assert not CONTROL.search(name + value), (name, value)


@FUZZ
@given(
    st.integers(0, 500),
    st.lists(st.tuples(st.integers(1, 500), ANY_TEXT), max_size=5),
    st.lists(st.integers(1, 500), max_size=5),
    st.lists(st.integers(1, 500), max_size=5),
)
@example(1, [(2, "evat_\ud800\r\n: bad\x00")], [3], [3])
def test_any_beacon_report_is_an_answer_chalice_takes(
    accepted: int, refusals: list[tuple[int, str]], unavailable: list[int], landed: list[int]
) -> None:
    response = beacon_report(accepted, refusals, unavailable, landed)
    assert response.status_code == (503 if unavailable else 200)
    assert_chalice_takes(with_cors(response, "*"))


@FUZZ
@given(ANY_TEXT)
@example("https://shop.example.com/\r\nX-Injected: 1")
@example("https://shop.example.com\n")
@example("https://shop.example.com/\x00")
def test_the_cors_origin_is_never_anything_but_an_allowed_origin(origin: str) -> None:
    gate = Gate(HitPolicy(), origins=OriginPolicy.parse("https://shop.example.com"))
    allowed = gate.cors_origin({"origin": origin})
    assert allowed in (None, "https://shop.example.com") or (
        allowed.lower() == "https://shop.example.com"
    )
    assert_chalice_takes(with_cors(pixel(), allowed))


@FUZZ
@given(ANY_TEXT)
def test_any_refusal_reason_is_an_answer_chalice_takes(reason: str) -> None:
    assert_chalice_takes(with_cors(refused(reason), None))
