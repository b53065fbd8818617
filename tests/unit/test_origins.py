"""The page-origin allowlist: which Origin/Referer headers pass, and its settings."""

from __future__ import annotations

import os

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from chalicelib.env import ConfigError
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


@pytest.mark.parametrize(
    "header",
    [
        # Found by review: urlsplit read the host after the "@", a browser the one before "\\".
        "https://evil.com\\@shop.example.com/",
        "https://evil.com\\\\@shop.example.com/",
        "https://evil.com\\.@shop.example.com/",
        "https:\\\\evil.com\\@shop.example.com/",
        "https://shop.example.com\\@evil.com/",  # a browser reads shop; ambiguous: refused
        # Userinfo: browsers strip it from Referer and never send it in Origin.
        "https://shop.example.com@evil.com/",
        "https://shop.example.com:443@evil.com/",
        "https://user:pass@shop.example.com/",
        "https://@shop.example.com/",
        "https://evil.com%40shop.example.com/",
        # Encoded or unusual hosts a browser would have normalized before sending.
        "https://shop%2Eexample.com/",
        "https://shop%2eexample%2ecom/",
        "https://shop.example.com%2F@evil.com/",
        "https://shop.example.com../",
        "https://.shop.example.com/",
        "https://shop..example.com/",
        "https://shop.example.com%00/",
        "https://shop.example.com\t/",
        "https://shop.example.com /",
        "https://shop.exa mple.com/",
        "https://shöp.example.com/",
        "https://[::1]/",
        # Ports a browser would not write.
        "https://shop.example.com:/",
        "https://shop.example.com:+443/",
        "https://shop.example.com: 443/",
        "https://shop.example.com:443:443/",
        "https://shop.example.com:0/",
        "https://shop.example.com:65536/",
        # Another scheme dressed up.
        "javascript://shop.example.com/%0aalert(1)",
        "https:/shop.example.com/",
        "https:shop.example.com",
    ],
)
def test_ambiguous_or_disguised_urls_are_refused_in_either_header(header: str) -> None:
    assert not SITE.allows(None, header)
    assert not SITE.allows(header, None)
    assert not SITE.allows(header, "https://shop.example.com/")


@pytest.mark.parametrize(
    "header",
    [
        "https://shop.example.com/@evil.com",  # "@" in the path: the host is before it
        "https://shop.example.com/path\\@evil.com",
        "https://shop.example.com?next=https://evil.com@x",
        "https://shop.example.com#@evil.com",
        "https://shop.example.com/%2e%2e/evil.com",
        "HTTPS://SHOP.EXAMPLE.COM",
        "https://Shop.Example.Com./cart",
        "https://shop.example.com:443",
        "https://shop.example.com:00443/",  # the WHATWG parser reads 443 too
        "https://deep.sub.example.org",
    ],
)
def test_what_a_browser_would_read_as_an_allowed_origin_passes(header: str) -> None:
    assert SITE.allows(header, None)
    assert SITE.allows(None, header)


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


def test_a_refusal_names_the_header_that_decided() -> None:
    not_allowed = "page origin not allowed (ALLOWED_PAGE_ORIGINS)"
    assert SITE.refusal("https://evil.example.com", "https://shop.example.com/") == (
        "Origin",
        not_allowed,
    )
    assert SITE.refusal(None, "https://evil.example.com/") == ("Referer", not_allowed)
    assert SITE.refusal("null", "https://evil.example.com/") == ("Referer", not_allowed)
    assert SITE.refusal("https://shop.example.com", None) is None
    strict = OriginPolicy.parse("https://shop.example.com", allow_missing=False)
    assert strict.refusal(None, None) == (
        "Origin/Referer",
        "neither sent; the page must be named (PAGE_ORIGIN_REQUIRED)",
    )


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
