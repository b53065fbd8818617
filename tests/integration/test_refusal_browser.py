"""Refusals a person can read in a real browser, where the page and the pixel are cross-origin.

A page served on one loopback origin (127.0.0.1:A) hits the pixel under `chalice local` on
another (localhost:B), as a real site hits its API Gateway URL. Chromium blocks the body of
the refused image (Opaque Response Blocking), and DevTools shows what Chrome DevTools
Protocol reports: the headers, `X-Pixel-Relay-Refusal` among them. Scripts read the same
header through CORS, and a beacon sent cross-origin is recorded.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from chalice.config import Config
from chalice.local import LocalDevServer

from tests.browser import BROWSER_TIMEOUT_MS, VISITOR_USER_AGENT
from tests.integration.harness import Pipeline

REFUSED = "event=view&endpoint_id=ep-1&usat_plan=gold"
REASON = (
    "usat_plan: anonymous hits may not write this profile attribute "
    "(not in ALLOWED_USER_ATTRIBUTES)"
)


@pytest.fixture
def pixel(pipeline: Pipeline) -> Iterator[str]:
    """`chalice local` on 127.0.0.1, addressed as localhost: another origin than the page."""
    from app import app

    server = LocalDevServer(app, Config(chalice_stage="dev"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield f"http://localhost:{server.server.server_address[1]}"
    server.shutdown()
    server.server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def site() -> Iterator[Callable[[str], str]]:
    """A page server on 127.0.0.1: `site(html)` serves that page and gives its URL."""
    pages: dict[str, bytes] = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            page = pages.get(self.path)
            self.send_response(200 if page else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.end_headers()
            self.wfile.write(page or b"")

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()

    def serve(html: str) -> str:
        path = f"/page-{len(pages)}.html"
        pages[path] = html.encode()
        return f"http://127.0.0.1:{server.server_address[1]}{path}"

    yield serve
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def page(chromium: Any) -> Iterator[Any]:
    # A visitor's User-Agent: HeadlessChrome is (rightly) refused by the bot filter.
    context = chromium.new_context(user_agent=VISITOR_USER_AGENT)
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    yield page
    context.close()


def wait_for(page: Any, found: Callable[[], Any], what: str) -> Any:
    """Poll `found` while Playwright delivers events (its sync API does so only inside
    its own calls, hence `wait_for_timeout` rather than `time.sleep`)."""
    deadline = time.monotonic() + BROWSER_TIMEOUT_MS / 1000
    while time.monotonic() < deadline:
        value = found()
        if value:
            return value
        page.wait_for_timeout(50)
    raise AssertionError(f"no {what} within {BROWSER_TIMEOUT_MS} ms")


def test_a_cross_origin_image_refusal_shows_its_reason_in_the_headers_devtools_sees(
    pixel: str, site: Callable[[str], str], page: Any, pipeline: Pipeline
) -> None:
    events: dict[str, list[dict[str, Any]]] = {}
    cdp = page.context.new_cdp_session(page)
    for name in ("requestWillBeSent", "responseReceivedExtraInfo", "loadingFailed"):
        cdp.on(
            f"Network.{name}", lambda event, name=name: events.setdefault(name, []).append(event)
        )
    cdp.send("Network.enable")

    url = site(
        f'<img id="hit" src="{pixel}/events?{REFUSED}" '
        "onerror=\"document.body.dataset.hit='error'\" onload=\"document.body.dataset.hit='load'\">"
    )
    page.goto(url)
    page.wait_for_selector("body[data-hit]")
    assert page.evaluate("document.body.dataset.hit") == "error"

    [sent] = [e for e in events["requestWillBeSent"] if "/events?" in e["request"]["url"]]
    assert sent["request"]["url"].startswith("http://localhost:")  # the page is 127.0.0.1
    hit = sent["requestId"]

    # The premise: Chromium blocked the body (ORB), so no script or Response tab shows it.
    failed = wait_for(
        page,
        lambda: [e for e in events.get("loadingFailed", []) if e["requestId"] == hit],
        "loadingFailed for the hit",
    )
    assert failed[0]["errorText"] == "net::ERR_BLOCKED_BY_ORB"
    # Chromium 156 sends no Network.responseReceived for a response ORB blocked; the raw
    # headers come in responseReceivedExtraInfo, which DevTools shows under Headers.
    [received] = wait_for(
        page,
        lambda: [e for e in events.get("responseReceivedExtraInfo", []) if e["requestId"] == hit],
        "the hit's response headers",
    )
    assert received["statusCode"] == 400
    headers = {name.lower(): value for name, value in received["headers"].items()}
    assert headers["x-pixel-relay-refusal"] == REASON
    assert pipeline.queued() == 0


def test_scripts_read_the_refusal_and_a_cross_origin_beacon_is_recorded(
    pixel: str, site: Callable[[str], str], page: Any, pipeline: Pipeline
) -> None:
    page.goto(site("<p>shop</p>"))
    refusal = page.evaluate(
        "url => fetch(url).then(r => [r.status, r.headers.get('X-Pixel-Relay-Refusal')])",
        f"{pixel}/events?{REFUSED}",
    )
    assert refusal == [400, REASON]

    report = page.evaluate(
        """url => fetch(url, {method: 'POST', body: 'event=view&endpoint_id=ep-1\\n\\nevat_x=1',
                              keepalive: true}).then(r => r.json())""",
        f"{pixel}/events",
    )
    assert report == {"accepted": 1, "refused": [{"line": 3, "reason": "event: is required"}]}

    sent = page.evaluate(
        "url => navigator.sendBeacon(url, 'event=a&endpoint_id=ep-2\\nevent=b&endpoint_id=ep-3')",
        f"{pixel}/events",
    )
    assert sent is True
    wait_for(page, lambda: pipeline.queued() == 3, "three messages on the queue")
