"""Hostile query strings through the Lambda entry point (API Gateway proxy event in, proxy
response out), with SQS on moto's server: the answer is always the GIF (and one message on
the queue) or a 400 with a reason; never a 5xx, never an exception."""

from __future__ import annotations

import base64
import json
import os
import time
from urllib.parse import parse_qs, quote

import jwt
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from chalicelib import runtime
from chalicelib.responses import TRANSPARENT_GIF
from tests.integration.harness import (
    CHROMIUM_IMAGE_ACCEPT,
    Pipeline,
    ProxyResponse,
    proxy_event,
)

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
BASE = "event=purchase&endpoint_id=ep-1"
PIECES = st.one_of(
    st.text(max_size=40),
    st.text(st.characters(exclude_categories=()), max_size=10).map(
        lambda text: quote(text, errors="surrogatepass")
    ),
    st.sampled_from(
        [
            "&", "=", "+", "%", "%zz", "%00", "%ed%a0%80", "%ef%bf%bf", "%f4%90%80%80", "%c0%af",
            "evat_", "evmt_", "usat_", "enat_", "enmt_", "evat_x=", "evmt_n=1e309", "evmt_n=nan",
            "user_id=u", "timestamp=", "timestamp=0001-01-01T00:00:00%2B01:00",
            "session_id=s&session_start=2026-01-01T00:00:00Z", "Address=x", "event=",
            "endpoint_id=", "event_id=", "gtmcb=1", "&event=again", "&endpoint_id=again",
        ]
    ),
)  # fmt: skip
LONG = st.builds(
    lambda name, character, length: f"{name}={character * length}",
    st.sampled_from(["evat_x", "evat_" + "k" * 60, "unknown", "event", "endpoint_id", "x" * 5000]),
    st.sampled_from(["a", "%e2%82%ac", "%F0%9F%98%80", "+", "%"]),
    # API Gateway takes about 10 KB of request line and headers; the examples below go further.
    st.sampled_from([200, 201, 2000, 12_000]),
)
QUERY = st.builds(
    lambda start, pieces: start + "".join(pieces),
    st.sampled_from(["", BASE + "&", BASE]),
    st.lists(st.one_of(PIECES, LONG), max_size=12),
)
ACCEPT = st.sampled_from([CHROMIUM_IMAGE_ACCEPT, None, "text/html", "image/webp,image/*"])


def assert_pixel_or_reason(answer: ProxyResponse) -> None:
    assert answer.status in {200, 400}, (answer.status, answer.body[:200])
    assert "no-store" in answer.headers["Cache-Control"]
    if answer.status == 200:
        assert answer.headers["Content-Type"] == "image/gif"
        assert answer.body == TRANSPARENT_GIF
    else:
        assert answer.headers["Content-Type"].startswith("text/plain")
        reason = answer.body.decode("utf-8")
        assert ": " in reason
        assert reason.endswith("\n")


def faithful(query: str) -> bool:
    """Whether every name and value of `query` is strict UTF-8, with no U+FFFD."""
    try:
        params = parse_qs(query, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return False
    return "\ufffd" not in json.dumps(params, ensure_ascii=False)


def test_any_query_gets_the_gif_or_a_reason(pipeline: Pipeline) -> None:
    accepted: list[str] = []

    @FUZZ
    @given(QUERY, ACCEPT)
    @example(BASE + "&evat_x=" + "a" * 100_000, CHROMIUM_IMAGE_ACCEPT)
    @example(BASE + "&evat_x=" + "%F0%9F%98%80" * 20_000, CHROMIUM_IMAGE_ACCEPT)
    @example(BASE + "&" + "evat_" + "k" * 100_000 + "=1", None)
    @example("evat_%ed%a0%80=1&" + BASE, None)
    @example(BASE + "&%ed%a0%80=1", CHROMIUM_IMAGE_ACCEPT)
    @example(BASE + "&evat_x=%ff", CHROMIUM_IMAGE_ACCEPT)
    @example(BASE + "&gtmcb=%c0%af", CHROMIUM_IMAGE_ACCEPT)
    @example("&".join(f"evat_k{n}=v" for n in range(41)) + "&" + BASE, None)
    @example("&".join(f"unknown{n}=v" for n in range(5000)) + "&" + BASE, None)
    def hit(query: str, accept: str | None) -> None:
        answer = pipeline.hit(query, accept)
        assert_pixel_or_reason(answer)
        if answer.status == 200:
            # Bytes are what they claim: an accepted query decodes as strict UTF-8.
            assert faithful(query), query
            accepted.append(query)

    hit()
    # Every 200 is one message on the queue, and nothing else got there.
    assert accepted
    assert pipeline.queued() == len(accepted)


BROWSER = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/131.0.0.0 Safari/537.36"
)
HEADER = st.one_of(
    st.none(),
    st.text(max_size=60),
    st.sampled_from(
        [
            "",
            "null",
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            BROWSER,
            "https://shop.example.com/",
            "https://shop.example.com:99999/",
            "http://[::1/",
            "x" * 20_000,
        ]
    ),
)


def invoke(query: str, headers: dict[str, str]) -> ProxyResponse:
    """The app as Lambda calls it, with any request headers (the bot and origin filters)."""
    from app import app

    answer = app(proxy_event(query, headers or None), None)
    body = answer["body"]
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return ProxyResponse(answer["statusCode"], answer["headers"], raw)


def test_any_headers_get_the_gif_or_a_reason(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With the bot filter, an origin allowlist and signed hits all on."""
    secret = "fuzz-secret-0123456789abcdef-0123456789"
    monkeypatch.setenv("ALLOWED_PAGE_ORIGINS", "https://shop.example.com")
    monkeypatch.setenv("TOKEN_HS256_KEYS", json.dumps({"k1": secret}))
    monkeypatch.setenv("SIGNED_USER_ATTRIBUTES", "tier")
    runtime.reset()
    expires = int(time.time()) + 3600
    token = jwt.encode(
        {"eid": "ep-1", "sub": "u-1", "exp": expires},
        secret,
        algorithm="HS256",
        headers={"kid": "k1"},
    )
    signed = f"{BASE}&user_id=u-1&usat_tier=gold&token={token}"
    queries = [BASE, signed, signed.replace("ep-1", "ep-2"), BASE + "&token=x.y.z", "evat_=1"]
    browser = {"User-Agent": BROWSER, "Referer": "https://shop.example.com/cart"}
    assert invoke(signed, browser).status == 200

    @FUZZ
    @given(HEADER, HEADER, HEADER, st.sampled_from(queries))
    def hit(user_agent: str | None, origin: str | None, referer: str | None, query: str) -> None:
        sent = {"User-Agent": user_agent, "Origin": origin, "Referer": referer}
        headers = {name: value for name, value in sent.items() if value is not None}
        assert_pixel_or_reason(invoke(query, headers))

    hit()


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
def test_a_huge_time_claim_in_a_signed_token_is_a_400_not_a_503(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, claim: str
) -> None:
    secret = "fuzz-secret-0123456789abcdef-0123456789"
    monkeypatch.setenv("TOKEN_HS256_KEYS", json.dumps({"k1": secret}))
    runtime.reset()
    claims: dict[str, object] = {"eid": "ep-1", "exp": int(time.time()) + 600, claim: 10**400}
    token = jwt.encode(claims, secret, algorithm="HS256", headers={"kid": "k1"})
    answer = invoke(f"{BASE}&token={token}", {"User-Agent": BROWSER})
    assert (answer.status, answer.body) == (400, f"token: {claim} is out of range\n".encode())
    assert pipeline.queued() == 0
