"""The page-origin allowlist: which Origin/Referer headers pass, and its settings."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.config import ConfigError
from chalicelib.origins import OriginPolicy

SITE = OriginPolicy.parse("https://shop.example.com, https://*.example.org, http://localhost:8001")


@pytest.mark.parametrize(
    "referer",
    [
        "https://shop.example.com/",
        "https://shop.example.com/cart?step=2#pay",
        "https://SHOP.Example.COM/",
        "https://shop.example.com:443/",
        "https://shop.example.com./",
        "https://www.example.org/",
        "https://a.b.example.org/page",
        "http://localhost:8001/demo",
    ],
)
def test_referers_from_allowed_pages_pass(referer: str) -> None:
    assert SITE.allows(None, referer)


@pytest.mark.parametrize(
    "referer",
    [
        "http://shop.example.com/",  # another scheme
        "https://shop.example.com:8443/",  # another port
        "https://evil.example.com/",
        "https://shop.example.com.evil.net/",
        "https://evilshop.example.com/",
        "https://example.org/",  # *. means subdomains, not the apex
        "https://notexample.org/",
        "https://www.example.org.evil.net/",
        "http://localhost:8002/",
        "file:///home/me/saved-page.html",
        "android-app://com.example/",
        "not a url",
        "https://shop.example.com:99999/",
        "https://shop.example.com:port/",
        "//shop.example.com/",
    ],
)
def test_referers_from_other_pages_are_refused(referer: str) -> None:
    assert not SITE.allows(None, referer)


def test_origin_decides_when_a_browser_sends_one() -> None:
    assert SITE.allows("https://shop.example.com", "https://evil.example.com/")
    assert not SITE.allows("https://evil.example.com", "https://shop.example.com/")


def test_opaque_origin_falls_back_to_the_referer() -> None:
    assert SITE.allows("null", "https://shop.example.com/")
    assert not SITE.allows("null", "https://evil.example.com/")


@pytest.mark.parametrize(
    ("origin", "referer"), [(None, None), ("", ""), ("null", None), (" ", " ")]
)
def test_no_page_at_all_passes_unless_required(origin: str | None, referer: str | None) -> None:
    assert SITE.allows(origin, referer)
    strict = OriginPolicy.parse("https://shop.example.com", allow_missing=False)
    assert not strict.allows(origin, referer)


def test_an_empty_list_allows_every_page() -> None:
    policy = OriginPolicy.parse("")
    assert not policy.enabled
    assert policy.allows("https://anything.example", None)
    assert policy.allows(None, "garbage")


def test_from_the_environment() -> None:
    assert not OriginPolicy.from_env({}).enabled
    policy = OriginPolicy.from_env(
        {"ALLOWED_PAGE_ORIGINS": "https://shop.example.com", "PAGE_ORIGIN_REQUIRED": "true"}
    )
    assert policy.enabled
    assert not policy.allow_missing
    assert policy.allows(None, "https://shop.example.com/x")


@pytest.mark.parametrize(
    "value",
    [
        "shop.example.com",
        "ftp://shop.example.com",
        "https://",
        "https://shop.example.com/path",
        "https://*",
        "https://*.com",
        "https://shop.*.com",
        "https://shop.example.com:0",
        "https://shop.example.com:70000",
        "https://shop.example.com:\uff18\uff10",  # fullwidth digits
        "https://bücher.example",
        "https://a_b.example.com",
        "https://shop.example.com,,https://b.example.com",
        "https://-shop.example.com",
    ],
)
def test_bad_entries_name_the_variable(value: str) -> None:
    with pytest.raises(ConfigError) as caught:
        OriginPolicy.parse(value)
    assert caught.value.variable == "ALLOWED_PAGE_ORIGINS"


def test_a_trailing_slash_and_case_are_forgiven() -> None:
    policy = OriginPolicy.parse("HTTPS://Shop.Example.com/")
    assert policy.allows(None, "https://shop.example.com/")


@settings(max_examples=300, deadline=None, database=None, derandomize=bool(os.environ.get("CI")))
@given(st.one_of(st.none(), st.text(max_size=200)), st.one_of(st.none(), st.text(max_size=200)))
def test_any_headers_get_an_answer_never_an_exception(
    origin: str | None, referer: str | None
) -> None:
    assert SITE.allows(origin, referer) in {True, False}
