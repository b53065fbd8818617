"""GET /pixel-relay.js: the tag's batching script, as API Gateway and `chalice local` serve it."""

from __future__ import annotations

import base64
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from chalicelib import script
from devtools.api_gateway import pixel_event
from tests.integration.harness import CHROMIUM_USER_AGENT, serving_chalice_local

SCRIPT_ACCEPT = "*/*"  # what Chromium sends for a <script src>


def gateway_get(headers: dict[str, str] | None) -> tuple[int, dict[str, Any], bytes]:
    """The app behind API Gateway (REST, proxy, binary media types */*): the bytes a browser
    receives once API Gateway has decoded the base64 body."""
    from app import app

    answer = app(pixel_event("", headers, path="/pixel-relay.js"), None)
    body = answer["body"]
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return answer["statusCode"], answer["headers"], raw


def max_age(cache_control: str) -> int:
    directives = dict(
        part.strip().partition("=")[::2] for part in cache_control.split(",") if part.strip()
    )
    return int(directives["max-age"])


@pytest.mark.parametrize("accept", [SCRIPT_ACCEPT, None, "text/html", "application/javascript"])
def test_the_script_is_answered_as_javascript_bytes_cacheable_for_a_day(
    accept: str | None,
) -> None:
    headers = {"User-Agent": CHROMIUM_USER_AGENT}
    if accept is not None:
        headers["Accept"] = accept
    status, answer_headers, body = gateway_get(headers)
    assert status == 200
    assert body == script.SOURCE.read_bytes()
    assert len(body) <= 16 * 1024
    assert answer_headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert "Content-Encoding" not in answer_headers
    assert max_age(answer_headers["Cache-Control"]) >= 86_400
    assert "no-store" not in answer_headers["Cache-Control"]
    assert "Expires" not in answer_headers
    assert "Pragma" not in answer_headers
    assert answer_headers["ETag"].startswith('"')


def test_a_browser_that_has_this_version_gets_a_304_without_a_body() -> None:
    _, headers, _ = gateway_get({"Accept": SCRIPT_ACCEPT})
    status, again, body = gateway_get({"Accept": SCRIPT_ACCEPT, "If-None-Match": headers["ETag"]})
    assert (status, body) == (304, b"")
    assert again["ETag"] == headers["ETag"]
    assert gateway_get({"Accept": SCRIPT_ACCEPT, "If-None-Match": '"old"'})[0] == 200


def test_the_pixel_still_answers_uncacheable() -> None:
    from app import app

    answer = app(pixel_event("event=view", {"User-Agent": CHROMIUM_USER_AGENT}), None)
    assert answer["statusCode"] == 400
    assert "no-store" in answer["headers"]["Cache-Control"]


@pytest.fixture
def chalice_local() -> Iterator[str]:
    """`chalice local` serving the app, no pipeline: the script needs no queue."""
    with serving_chalice_local() as url:
        yield url


def test_chalice_local_serves_the_same_bytes_and_headers(chalice_local: str) -> None:
    request = urllib.request.Request(
        f"{chalice_local}/pixel-relay.js",
        headers={"User-Agent": CHROMIUM_USER_AGENT, "Accept": SCRIPT_ACCEPT},
    )
    with urllib.request.urlopen(request, timeout=10) as answer:
        assert answer.status == 200
        assert answer.headers["Content-Type"] == "text/javascript; charset=utf-8"
        assert answer.headers.get("Content-Encoding") is None
        assert max_age(answer.headers["Cache-Control"]) >= 86_400
        assert answer.read() == script.SOURCE.read_bytes()
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(
            urllib.request.Request(f"{chalice_local}/pixel-relay.js", method="POST"), timeout=10
        )
    refused.value.close()
    assert refused.value.code == 405
