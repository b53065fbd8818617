"""The demo server: the relay, its journal, the page's API, and the page in Chromium.

The pixel here is a small fake on loopback that judges hits with the real rules
(`chalicelib.hits.parse_hit`) and answers with the real bodies and headers, but enqueues
nothing: the test itself plays the consumer by appending to the fake `delivered()` list.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from chalicelib.destinations.pinpoint import event_to_wire, profile_to_wire
from chalicelib.events import Event
from chalicelib.hits import HitPolicy, HitRefusedError, parse_hit
from chalicelib.responses import NO_CACHE, TRANSPARENT_GIF
from devtools.gtm.page_server import GtmPageServer
from devtools.localstack.demo_server import DEMO_DIR, DemoServer
from tests.browser import BROWSER_TIMEOUT_MS, newest_hit, page_errors

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_IMAGE_ACCEPT = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


# A fake pixel and a fake destination -------------------------------------------------------


@dataclass(frozen=True)
class PixelRequest:
    path: str
    query: str
    headers: dict[str, str]


@dataclass
class FakePixel:
    """`GET /events` with the real rules and answers; records requests and accepted events."""

    requests: list[PixelRequest] = field(default_factory=list)
    accepted: list[Event] = field(default_factory=list)
    unavailable: bool = False
    url: str = ""

    def answer(self, path: str, query: str) -> tuple[int, dict[str, str], bytes]:
        if path != "/events":
            return 404, {"Content-Type": "text/plain"}, b"not found\n"
        if self.unavailable:
            body = b"event not recorded: queue unavailable, try again\n"
            headers = {**NO_CACHE, "Content-Type": "text/plain; charset=utf-8", "Retry-After": "1"}
            return 503, headers, body
        params = parse_qs(query, keep_blank_values=True)
        try:
            hit = parse_hit(params, HitPolicy(), datetime.now(UTC))
        except HitRefusedError as refusal:
            headers = {**NO_CACHE, "Content-Type": "text/plain; charset=utf-8"}
            return 400, headers, f"{refusal}\n".encode()
        self.accepted.append(hit.event)
        return 200, {**NO_CACHE, "Content-Type": "image/gif"}, TRANSPARENT_GIF

    def accepted_event(self, event_id: str) -> Event:
        found = [event for event in self.accepted if event.event_id == event_id]
        assert found, f"the pixel accepted no event {event_id}"
        return found[0]

    def __call__(self, request: Request) -> Response:
        path, query = request.path, request.query_string.decode("latin-1")
        self.requests.append(PixelRequest(path, query, dict(request.headers.items())))
        status, headers, body = self.answer(path, query)
        return Response(body, status, headers)


@pytest.fixture
def pixel(httpserver: HTTPServer) -> Iterator[FakePixel]:
    fake = FakePixel(url=httpserver.url_for("/").rstrip("/"))
    httpserver.expect_request(re.compile("/.*"), method="GET").respond_with_handler(fake)
    yield fake
    httpserver.check()


class Destination:
    """The fake `delivered()` and a recording `simulate_outage`."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []
        self.outages: list[int] = []

    def delivered(self) -> list[dict[str, Any]]:
        return list(self.records)

    def simulate_outage(self, calls: int) -> None:
        self.outages.append(calls)

    def deliver(self, event: Event) -> None:
        """What the Pinpoint stand-in records once the consumer delivered `event`."""
        self.records.append(
            {
                "endpoint_id": event.endpoint_id,
                "event_id": event.event_id,
                "event": event_to_wire(event),
                "endpoint": profile_to_wire(event.profile),
            }
        )


@pytest.fixture
def destination() -> Destination:
    return Destination()


@pytest.fixture
def demo(pixel: FakePixel, destination: Destination) -> Iterator[DemoServer]:
    with DemoServer(pixel.url, destination.delivered, destination.simulate_outage) as server:
        yield server


# HTTP helpers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def request(
    base: str,
    target: str,
    method: str = "GET",
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
) -> Answer:
    """Send `target` as written (no normalising, no default headers) and read the answer."""
    parts = urlsplit(base)
    assert parts.hostname is not None
    connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        connection.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection.putheader(name, value)
        if body is not None:
            connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        return Answer(response.status, dict(response.getheaders()), response.read())
    finally:
        connection.close()


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


# The relay --------------------------------------------------------------------------------


def test_relay_forwards_accept_and_user_agent_and_returns_the_gif_byte_for_byte(
    demo: DemoServer, pixel: FakePixel
) -> None:
    query = "event=purchase&endpoint_id=e-1&evat_product=shoes&evmt_price=49.90&gtmcb=1234567"
    browser = {"Accept": CHROMIUM_IMAGE_ACCEPT, "User-Agent": "Mozilla/5.0 (demo test)"}

    answer = request(demo.url, f"/events?{query}", headers=browser)

    assert answer.status == 200
    assert answer.body == TRANSPARENT_GIF
    assert answer.headers["Content-Type"] == "image/gif"
    for name in ("Cache-Control", "Pragma", "Expires", "X-Content-Type-Options"):
        assert answer.headers[name] == NO_CACHE[name]
    (sent,) = pixel.requests
    assert (sent.path, sent.query) == ("/events", query)
    assert sent.headers["Accept"] == browser["Accept"]
    assert sent.headers["User-Agent"] == browser["User-Agent"]
    (entry,) = request(demo.url, "/api/hits").json()
    assert entry == {
        "seq": 1,
        "id": "1234567",
        "query": query,
        "status": 200,
        "content_type": "image/gif",
        "reason": None,
        "at": entry["at"],
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", entry["at"])


def test_relay_keeps_the_raw_query_and_adds_no_headers_of_its_own(
    demo: DemoServer, pixel: FakePixel
) -> None:
    query = "event=view&endpoint_id=e%2B1&evat_page=%2Fshop%3Fa%3Db%26c&evat_q=a+b&evat_q2=a%20b"

    answer = request(demo.url, f"/events?{query}")

    assert answer.status == 200
    (sent,) = pixel.requests
    assert sent.query == query
    assert "Accept" not in sent.headers  # a browser that sends none: the pixel sees none
    assert "User-Agent" not in sent.headers
    assert "Accept-Encoding" not in sent.headers
    assert pixel.accepted[0].attributes == {"page": "/shop?a=b&c", "q": "a b", "q2": "a b"}
    assert pixel.accepted[0].endpoint_id == "e+1"


def test_refused_hit_is_returned_unchanged_and_its_reason_journaled(
    demo: DemoServer, pixel: FakePixel
) -> None:
    query = "event=review&endpoint_id=e-1&evat_note=" + "x" * 231

    answer = request(demo.url, f"/events?{query}", headers={"Accept": CHROMIUM_IMAGE_ACCEPT})

    reason = "evat_note: value is 231 characters; Pinpoint allows 200"
    assert answer.status == 400
    assert answer.body == f"{reason}\n".encode()
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.headers["Cache-Control"] == NO_CACHE["Cache-Control"]
    (entry,) = demo.hits()
    assert (entry.status, entry.reason, entry.query) == (400, reason, query)
    assert re.fullmatch(r"[0-9a-f]{32}", entry.id)  # no gtmcb: an id of the relay's own


def test_queue_unavailable_keeps_retry_after(demo: DemoServer, pixel: FakePixel) -> None:
    pixel.unavailable = True

    answer = request(demo.url, "/events?event=purchase&endpoint_id=e-1&gtmcb=9")

    assert answer.status == 503
    assert answer.headers["Retry-After"] == "1"
    (entry,) = demo.hits()
    assert (entry.id, entry.status) == ("9", 503)
    assert entry.reason == "event not recorded: queue unavailable, try again"


def test_pixel_down_answers_502_with_a_reason_and_journals_it(destination: Destination) -> None:
    pixel_url = f"http://127.0.0.1:{closed_port()}"
    with DemoServer(pixel_url, destination.delivered, destination.simulate_outage) as demo:
        answer = request(demo.url, "/events?event=purchase&endpoint_id=e-1&gtmcb=77")
        entries = request(demo.url, "/api/hits?after=0").json()

    assert answer.status == 502
    assert answer.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.body.decode().startswith(f"pixel unreachable at {pixel_url}/events: ")
    (entry,) = entries
    assert (entry["id"], entry["status"]) == ("77", 502)
    assert entry["reason"].startswith("pixel unreachable")


def test_pixel_base_with_a_path_keeps_it(destination: Destination, pixel: FakePixel) -> None:
    with DemoServer(
        f"{pixel.url}/api/", destination.delivered, destination.simulate_outage
    ) as demo:
        answer = request(demo.url, "/events?event=purchase&endpoint_id=e-1")

    assert answer.status == 404  # the fake serves /events only
    assert pixel.requests[0].path == "/api/events"


@pytest.mark.parametrize(
    "pixel_url", ["127.0.0.1:8000", "ftp://127.0.0.1", "http://", "http://h/?x=1"]
)
def test_pixel_url_must_be_an_http_base(pixel_url: str, destination: Destination) -> None:
    with pytest.raises(ValueError, match="pixel_url"):
        DemoServer(pixel_url, destination.delivered, destination.simulate_outage)


# The page's API ---------------------------------------------------------------------------


def test_hits_after_returns_only_newer_entries(demo: DemoServer) -> None:
    for n in range(3):
        request(demo.url, f"/events?event=purchase&endpoint_id=e-{n}&gtmcb={n}")

    assert [e["seq"] for e in request(demo.url, "/api/hits").json()] == [1, 2, 3]
    assert [e["id"] for e in request(demo.url, "/api/hits?after=1").json()] == ["1", "2"]
    assert request(demo.url, "/api/hits?after=3").json() == []


@pytest.mark.parametrize("query", ["after=-1", "after=x", "after=", "after=1&after=2"])
def test_counters_must_be_whole_numbers(demo: DemoServer, query: str) -> None:
    for route in ("/api/hits", "/api/delivered"):
        answer = request(demo.url, f"{route}?{query}")
        assert answer.status == 400
        assert b"after" in answer.body


def test_delivered_after_n_returns_the_rest_with_index_and_arrival_time(
    demo: DemoServer, destination: Destination
) -> None:
    for n in range(3):
        destination.records.append(
            {"endpoint_id": "e", "event_id": f"id-{n}", "event": {"EventType": "x"}, "endpoint": {}}
        )

    records = request(demo.url, "/api/delivered?after=1").json()

    assert [r["event_id"] for r in records] == ["id-1", "id-2"]
    assert [r["index"] for r in records] == [1, 2]
    assert records[0]["event"] == {"EventType": "x"}
    assert all(re.fullmatch(r".+T.+\.\d{3}Z", r["observed_at"]) for r in records)
    assert request(demo.url, "/api/delivered?after=3").json() == []


def test_delivered_failure_is_reported(pixel: FakePixel) -> None:
    def broken() -> list[dict[str, Any]]:
        raise RuntimeError("stand-in gone")

    with DemoServer(pixel.url, broken, lambda calls: None) as demo:
        answer = request(demo.url, "/api/delivered")

    assert answer.status == 500
    assert b"stand-in gone" in answer.body


def test_outage_calls_simulate_outage(demo: DemoServer, destination: Destination) -> None:
    answer = request(
        demo.url,
        "/api/outage",
        "POST",
        {"Content-Type": "application/json"},
        json.dumps({"calls": 3}).encode(),
    )

    assert answer.status == 204
    assert answer.body == b""
    assert destination.outages == [3]


@pytest.mark.parametrize(
    "body",
    [
        b'{"calls": 0}',
        b'{"calls": 21}',
        b'{"calls": "3"}',
        b'{"calls": true}',
        b'{"calls": 2.5}',
        b'{"calls": null}',
        b"{}",
        b"[3]",
        b"not json",
        b"",
    ],
)
def test_outage_refuses_anything_but_1_to_20_calls(
    demo: DemoServer, destination: Destination, body: bytes
) -> None:
    answer = request(demo.url, "/api/outage", "POST", {"Content-Type": "application/json"}, body)

    assert answer.status == 400
    assert answer.body.strip()
    assert destination.outages == []


def test_outage_needs_json(demo: DemoServer, destination: Destination) -> None:
    # A cross-site form can post text/plain without a preflight; JSON cannot.
    answer = request(
        demo.url, "/api/outage", "POST", {"Content-Type": "text/plain"}, b'{"calls":3}'
    )

    assert answer.status == 415
    assert destination.outages == []


def test_outage_failure_is_reported(pixel: FakePixel) -> None:
    def broken(calls: int) -> None:
        raise RuntimeError("no stand-in")

    with DemoServer(pixel.url, list, broken) as demo:
        answer = request(
            demo.url, "/api/outage", "POST", {"Content-Type": "application/json"}, b'{"calls": 3}'
        )

    assert answer.status == 500
    assert b"no stand-in" in answer.body


def test_config_names_the_pixel(demo: DemoServer, pixel: FakePixel) -> None:
    assert request(demo.url, "/api/config").json() == {
        "pixel_url": pixel.url,
        "relay": "/events",
        "destination": "pinpoint",
    }


# Static files ------------------------------------------------------------------------------


def test_page_and_assets_are_served(demo: DemoServer) -> None:
    page = request(demo.url, "/")
    assert page.status == 200
    assert page.headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'src="/static/demo.js"' in page.body
    script = request(demo.url, "/static/demo.js")
    assert script.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert b"function customImageTagUrl(" in script.body
    style = request(demo.url, "/static/demo.css")
    assert style.headers["Content-Type"] == "text/css; charset=utf-8"


@pytest.mark.parametrize(
    "target",
    [
        "/static/../demo_server.py",
        "/static/..%2Fdemo_server.py",
        "/static/%2e%2e/demo_server.py",
        "/static/%2e%2e%2fdemo_server.py",
        "/static/..\\demo_server.py",
        "/static//etc/passwd",
        "/static/.hidden.js",
        "/static/demo_server.py",
        "/static/",
        "/static/missing.js",
        "/static/index",
    ],
)
def test_static_refuses_anything_outside_the_demo_folder(demo: DemoServer, target: str) -> None:
    answer = request(demo.url, target)

    assert answer.status == 404
    assert b"import" not in answer.body


def test_unknown_routes_and_methods(demo: DemoServer) -> None:
    assert request(demo.url, "/nope").status == 404
    assert request(demo.url, "/api/outage").status == 404  # GET
    assert request(demo.url, "/api/hits", "POST", body=b"").status == 404
    assert request(demo.url, "/events", "PUT", body=b"").status == 405


# Lifecycle and logs ----------------------------------------------------------------------


def test_url_start_stop_and_quiet_logs(
    pixel: FakePixel, destination: Destination, capfd: pytest.CaptureFixture[str]
) -> None:
    server = DemoServer(pixel.url, destination.delivered, destination.simulate_outage)
    with pytest.raises(RuntimeError):
        _ = server.url
    assert server.start() is server
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/", server.url)
    with pytest.raises(RuntimeError):
        server.start()
    url = server.url
    request(url, "/")
    request(url, "/events?event=x&endpoint_id=y")
    request(url, "/nope")
    server.stop()
    server.stop()  # twice is fine

    assert capfd.readouterr().err == ""
    with pytest.raises(ConnectionRefusedError):
        request(url, "/")


# The page in Chromium ----------------------------------------------------------------------


@pytest.fixture
def page(chromium: Any, demo: DemoServer) -> Iterator[Any]:
    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.extend(page_errors(message)))
    page.goto(demo.url)
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert errors == [], f"the page logged errors: {errors}"


def test_page_sends_hits_and_shows_answers_deliveries_and_reasons(
    page: Any, pixel: FakePixel, destination: Destination, tmp_path: Path
) -> None:
    endpoint_id = page.input_value("#endpoint-id")
    assert re.fullmatch(r"demo-[0-9a-f]{12}", endpoint_id)
    template = page.inner_text("[data-testid=template]")
    assert template == (
        f"{pixel.url}/events?event={{{{enc event}}}}&endpoint_id={{{{enc endpointId}}}}"
        "&event_id={{Event ID}}&evat_product={{enc attributes.product}}"
        "&evat_color={{enc attributes.color}}&evmt_price={{enc metrics.price}}"
    )

    # Send: the stand-in's Image request reaches the pixel through the relay; GTM succeeds.
    page.click("[data-testid=send]")
    card = newest_hit(page, 1)
    assert card.get_attribute("data-gtm") == "succeeded"
    assert card.get_attribute("data-status") == "200"
    assert card.get_attribute("data-delivery") == "waiting"
    assert "200 accepted" in card.locator("[data-testid=answer]").inner_text()
    event_id = card.get_attribute("data-event-id")
    sent = pixel.requests[-1]
    assert sent.headers["Accept"] == CHROMIUM_IMAGE_ACCEPT  # the browser's, forwarded
    assert re.fullmatch(
        f"event=purchase&endpoint_id={endpoint_id}&event_id={event_id}"
        r"&evat_product=shoes&evat_color=red&evmt_price=49\.90&gtmcb=\d{10}",
        sent.query,
    )
    assert card.get_attribute("data-hit-id") == parse_qs(sent.query)["gtmcb"][0]

    # The consumer delivers it: the card shows the Pinpoint event, matched by event id.
    destination.deliver(pixel.accepted_event(event_id))
    page.wait_for_selector(
        f"[data-testid=hit][data-event-id='{event_id}'][data-delivery=delivered]"
    )
    delivered = json.loads(card.locator("[data-testid=delivered]").inner_text())
    assert delivered["EventType"] == "purchase"
    assert delivered["Attributes"] == {"product": "shoes", "color": "red"}
    assert delivered["Metrics"] == {"price": 49.9}
    assert f'Events["{event_id[:8]}…"]' in card.inner_text()
    assert "Delivered once" in card.locator("[data-testid=delivery]").inner_text()

    # Refused examples: GTM sees Failed, the card shows the pixel's reason, nothing queued.
    examples = {
        "try-missing-endpoint": "endpoint_id: is required",
        "try-long-value": r"evat_text: value is \d+ characters; Pinpoint allows 200",
        "try-profile-attribute": re.escape(
            "usat_plan: anonymous hits may not write this profile attribute"
            " (not in ALLOWED_USER_ATTRIBUTES)"
        ),
    }
    for count, (button, reason) in enumerate(examples.items(), start=2):
        accepted_before = len(pixel.accepted)
        page.click(f"[data-testid={button}]")
        card = newest_hit(page, count)
        assert card.get_attribute("data-gtm") == "failed"
        assert card.get_attribute("data-status") == "400"
        assert card.get_attribute("data-delivery") == "never"
        assert re.fullmatch(reason, card.locator("[data-testid=reason]").inner_text())
        assert "Never reached the queue" in card.locator("[data-testid=delivery]").inner_text()
        assert "Failed" in card.locator("[data-testid=gtm]").inner_text()
        assert len(pixel.accepted) == accepted_before

    # The outage button asks the destination to fail its next 3 calls.
    page.click("[data-testid=outage]")
    page.wait_for_function(
        "document.querySelector('[data-testid=outage-status]').textContent.includes('next 3')"
    )
    assert destination.outages == [3]

    # A hit sent during the outage waits on the queue, then arrives once the consumer's
    # retry succeeds. Its values are URL-encoded: one with & and a space arrives whole.
    page.fill("#event-name", "add_to_cart")
    page.fill("#attr-name-3", "note")
    page.fill("#attr-value-3", "fits & sits well")
    page.click("[data-testid=send]")
    card = newest_hit(page, 5)
    assert card.get_attribute("data-gtm") == "succeeded"
    assert card.get_attribute("data-delivery") == "waiting"
    page.wait_for_function(
        "document.querySelector('[data-testid=counters]').textContent.includes('1 waiting')"
    )
    event_id = card.get_attribute("data-event-id")
    assert pixel.accepted_event(event_id).attributes["note"] == "fits & sits well"
    time.sleep(1.0)  # the retries
    destination.deliver(pixel.accepted_event(event_id))
    page.wait_for_selector(
        f"[data-testid=hit][data-event-id='{event_id}'][data-delivery=delivered]"
    )
    assert "Delivered once" in card.locator("[data-testid=delivery]").inner_text()

    # One more, still waiting, for the screenshot: waiting, delivered and refused cards.
    page.fill("#event-name", "purchase")
    page.fill("#attr-value-1", "sneakers")
    page.fill("#attr-name-3", "")
    page.fill("#attr-value-3", "")
    page.click("[data-testid=send]")
    assert newest_hit(page, 6).get_attribute("data-delivery") == "waiting"
    time.sleep(1.0)  # a moment on the queue
    screenshot = tmp_path / "demo.png"
    page.screenshot(path=str(screenshot))
    assert screenshot.stat().st_size > 10_000


def test_hits_not_sent_by_the_page_still_get_cards(
    page: Any, demo: DemoServer, pixel: FakePixel, destination: Destination
) -> None:
    # Through the relay from elsewhere (curl, real GTM): a card from the journal.
    request(demo.url, "/events?event=curl_hit&endpoint_id=e-9&event_id=ev-9&gtmcb=5")
    card = newest_hit(page, 1)
    assert card.get_attribute("data-gtm") == "unknown"
    assert card.get_attribute("data-status") == "200"
    destination.deliver(pixel.accepted_event("ev-9"))
    page.wait_for_selector("[data-testid=hit][data-event-id='ev-9'][data-delivery=delivered]")

    # Straight to the pixel, never through the relay: a delivered-only card.
    destination.records.append(
        {"endpoint_id": "e-8", "event_id": "ev-8", "event": {"EventType": "direct"}, "endpoint": {}}
    )
    page.wait_for_selector("[data-testid=hit][data-event-id='ev-8'][data-delivery=delivered]")


def test_page_reports_a_pixel_that_is_down(chromium: Any, destination: Destination) -> None:
    pixel_url = f"http://127.0.0.1:{closed_port()}"
    with DemoServer(pixel_url, destination.delivered, destination.simulate_outage) as demo:
        context = chromium.new_context()
        try:
            page = context.new_page()
            page.set_default_timeout(BROWSER_TIMEOUT_MS)
            page.goto(demo.url)
            page.wait_for_selector("body[data-ready=true]")
            page.click("[data-testid=send]")
            card = newest_hit(page, 1)
            assert card.get_attribute("data-gtm") == "failed"
            assert card.get_attribute("data-status") == "502"
            assert "pixel unreachable" in card.locator("[data-testid=reason]").inner_text()
            assert card.get_attribute("data-delivery") == "never"
        finally:
            context.close()


def test_gtm_parameter_loads_the_real_container_instead_of_the_stand_in(
    page: Any, demo: DemoServer, pixel: FakePixel
) -> None:
    loaded: list[str] = []

    def fake_gtm(route: Any) -> None:  # no internet in tests: answer for googletagmanager.com
        loaded.append(route.request.url)
        route.fulfill(content_type="text/javascript", body="window.fakeGtm = true;")

    page.route("https://www.googletagmanager.com/**", fake_gtm)
    page.goto(f"{demo.url}?gtm=GTM-TEST123")
    page.wait_for_selector("body[data-ready=true]")
    page.wait_for_function("window.fakeGtm === true")

    assert loaded == ["https://www.googletagmanager.com/gtm.js?id=GTM-TEST123"]
    assert "GTM-TEST123" in page.inner_text("[data-testid=mode]")
    assert page.evaluate("window.dataLayer[0].event") == "gtm.js"
    assert page.evaluate("window.dataLayer.push === Array.prototype.push")  # no stand-in
    page.click("[data-testid=send]")
    assert page.evaluate("window.dataLayer.at(-1).event") == "purchase"
    # The container's own tag would request the relay; its answer still gets a card.
    request(demo.url, "/events?event=purchase&endpoint_id=e-1&event_id=ev-1&gtmcb=3")
    card = newest_hit(page, 1)
    assert (card.get_attribute("data-gtm"), card.get_attribute("data-status")) == ("unknown", "200")
    assert len(pixel.requests) == 1


def demo_events_in_the_page() -> set[str]:
    """Every event name demo.js and index.html push: the form's default, the buttons', the
    leave link's (the real-GTM container's trigger must fire on each)."""
    script = (DEMO_DIR / "demo.js").read_text()
    page = (DEMO_DIR / "index.html").read_text()
    pushed = set(re.findall(r'\bevent: "([^"]+)"', script))
    pushed.discard("gtm.js")  # GTM's own start event, pushed by the real snippet
    default = re.search(r'id="event-name"[^>]*value="([^"]+)"', page)
    assert default is not None
    return pushed | {default.group(1), "checkout"}  # checkout: test_demo_leave's push


def test_the_demo_container_fires_on_the_pages_events_through_its_relay(demo: DemoServer) -> None:
    answer = request(demo.url, "/api/container.json")
    assert answer.status == 200
    assert answer.headers["Content-Disposition"].startswith("attachment;")
    version = answer.json()["containerVersion"]
    tags = {tag["name"]: tag for tag in version["tag"]}
    assert "paused" not in tags["pixel-relay"]  # the template tag sends
    assert tags["pixel-relay Image"]["paused"] is True  # and only it
    fields = {p["key"]: p.get("value") for p in tags["pixel-relay"]["parameter"]}
    assert fields["transport"] == "image"  # the relay takes GETs
    [constant] = [v for v in version["variable"] if v["name"] == "pixel-relay API URL"]
    assert constant["parameter"][0]["value"] == demo.url
    [template] = version["customTemplate"]
    assert f'"string": "{demo.url}events"' in template["templateData"]
    [trigger] = version["trigger"]
    regex = re.compile(trigger["customEventFilter"][0]["parameter"][1]["value"])
    for event in demo_events_in_the_page():
        assert regex.search(event), f"the trigger does not fire on {event}"
    # Every variable a tag or the trigger names exists.
    defined = {v["name"] for v in version["variable"]} | {"Event", "_event"}
    named = set(re.findall(r"\{\{([^}]+)\}\}", json.dumps(version["tag"] + version["trigger"])))
    assert named <= defined, named - defined


def test_real_gtm_mode_sends_with_the_demo_container_to_the_relay(
    page: Any, demo: DemoServer, pixel: FakePixel
) -> None:
    """gtm.js is answered by the strict emulator's container runtime (no internet in tests),
    running the container the page offers: the push fires the template tag, the relay gets
    the hit and the page shows the pixel's answer."""
    with GtmPageServer(pixel.url, {}) as runtime:
        bootstrap = (
            f"import('{runtime.url}gtm/page.mjs').then(async (m) => {{"
            " const c = await (await fetch('/api/container.json')).json();"
            " m.startContainer(c); window.fakeGtm = true; });"
        )
        page.route(
            "https://www.googletagmanager.com/**",
            lambda route: route.fulfill(content_type="text/javascript", body=bootstrap),
        )
        page.goto(f"{demo.url}?gtm=GTM-TEST123")
        page.wait_for_selector("body[data-ready=true]")
        page.wait_for_function("window.fakeGtm === true")
        page.click("[data-testid=send]")
        card = newest_hit(page, 1)
        assert card.get_attribute("data-status") == "200"
        page.wait_for_function(
            "window.pixelRelayGtm.fired.some(f => f.tag === 'pixel-relay' && f.outcome)"
        )
        fired = page.evaluate("window.pixelRelayGtm")
    assert fired["errors"] == []
    assert [(f["tag"], f["event"], f["outcome"]) for f in fired["fired"]] == [
        ("pixel-relay", "purchase", "success")
    ]
    [sent] = [r for r in pixel.requests if r.path == "/events"]
    params = parse_qs(sent.query)
    assert params["event"] == ["purchase"]
    assert params["evat_product"] == ["shoes"]
    assert "sent_at" in params
    assert "consent" in params


def test_a_malformed_gtm_id_keeps_the_stand_in(page: Any, demo: DemoServer) -> None:
    loaded: list[str] = []
    page.route("https://www.googletagmanager.com/**", lambda r: loaded.append(r.request.url))
    page.goto(f"{demo.url}?gtm=GTM-1%22%3E%3Cscript%3E")
    page.wait_for_selector("body[data-ready=true]")

    assert "not a GTM-XXXXXXX id" in page.inner_text("[data-testid=mode]")
    page.click("[data-testid=send]")
    assert newest_hit(page, 1).get_attribute("data-gtm") == "succeeded"
    assert loaded == []


def test_endpoint_id_is_kept_across_reloads(page: Any) -> None:
    first = page.input_value("#endpoint-id")
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#endpoint-id") == first
    page.click("[data-testid=new-endpoint]")
    second = page.input_value("#endpoint-id")
    assert second != first
    page.reload()
    page.wait_for_selector("body[data-ready=true]")
    assert page.input_value("#endpoint-id") == second


# Customer Profiles: the object and the event triggers it fired -----------------------------


@pytest.fixture
def profiles_dry_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The dry run's Customer Profiles stand-in, set up as `make profiles-setup` would with
    PROFILES_TRIGGER_EVENTS=purchase_success and its campaign, and the real destination's
    client on it."""
    from chalicelib.destinations import registry
    from devtools.localstack.dry_run import DryRun

    environment = {
        "PROFILES_DOMAIN": "pixel-relay-dev",
        "PROFILES_TRIGGER_EVENTS": "purchase_success",
        "PROFILES_CAMPAIGNS": f"purchase_success={DEMO_CAMPAIGN}",
    }
    said: list[str] = []
    dry_run = DryRun(
        ("customer-profiles",),
        environment,
        tmp_path / "dry-run.jsonl",
        said.append,
        moto_url=f"http://127.0.0.1:{closed_port()}",
        host="127.0.0.1",
    )
    endpoints = dry_run.start()
    for name, value in {
        **endpoints,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
    }.items():
        monkeypatch.setenv(name, value)
    yield dry_run, registry.plugin("customer-profiles").configure(environment).create()
    dry_run.stop()


DEMO_CAMPAIGN = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/thank-you"


def test_page_shows_the_profile_object_and_the_campaign_its_trigger_would_start(
    chromium: Any, pixel: FakePixel, profiles_dry_run: Any
) -> None:
    dry_run, destination = profiles_dry_run
    delivered = lambda: dry_run.delivered("customer-profiles")  # noqa: E731
    with DemoServer(
        pixel.url, delivered, dry_run.simulate_outage, destination="customer-profiles"
    ) as demo:
        context = chromium.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.extend(page_errors(message)))
        page.goto(demo.url)
        page.wait_for_selector("body[data-ready=true]")
        assert page.inner_text("[data-testid=flow-destination]") == "Customer Profiles"
        assert "Customer Profiles outage" in page.inner_text("[data-testid=outage]")

        # An event the trigger names: the consumer's write reaches the stand-in, which
        # evaluates pixel-relay-purchase_success and starts its campaign on the campaigns
        # stand-in; the card says which profile that campaign would reach.
        page.fill("#event-name", "purchase_success")
        page.click("[data-testid=send]")
        card = newest_hit(page, 1)
        event_id = card.get_attribute("data-event-id")
        [outcome] = destination.deliver([pixel.accepted_event(event_id)])
        assert outcome.verdict.name == "DELIVERED"
        page.wait_for_selector(
            f"[data-testid=hit][data-event-id='{event_id}'][data-delivery=delivered]"
        )
        label = card.locator("[data-testid=delivery] .step-label").text_content()
        assert label == "Customer Profiles"
        stored = json.loads(card.locator("[data-testid=delivered]").inner_text())
        assert (stored["event_type"], stored["event_id"]) == ("purchase_success", event_id)
        assert stored["attributes"] == {"product": "shoes", "color": "red"}
        caption = card.locator(".delivered-caption").inner_text()
        assert "profile object PixelRelayEvent" in caption
        profile_id = stored_profile_id(dry_run)
        assert card.locator("[data-testid=trigger]").all_inner_texts() == [
            f"Campaign thank-you would reach profile {profile_id}"
        ]

        # A second purchase inside the limit (one a day per profile): held, and said so.
        page.fill("#event-name", "purchase_success")
        page.click("[data-testid=send]")
        card = newest_hit(page, 2)
        event_id = card.get_attribute("data-event-id")
        destination.deliver([pixel.accepted_event(event_id)])
        page.wait_for_selector(
            f"[data-testid=hit][data-event-id='{event_id}'][data-delivery=delivered]"
        )
        assert card.locator("[data-testid=trigger]").all_inner_texts() == [
            "Trigger pixel-relay-purchase_success matched; no campaign start:"
            " limit reached for this profile (1 per 1 DAYS)"
        ]

        # An event no trigger names: the object is stored, no campaign would start.
        page.fill("#event-name", "add_to_cart")
        page.click("[data-testid=send]")
        card = newest_hit(page, 3)
        event_id = card.get_attribute("data-event-id")
        destination.deliver([pixel.accepted_event(event_id)])
        page.wait_for_selector(
            f"[data-testid=hit][data-event-id='{event_id}'][data-delivery=delivered]"
        )
        assert card.locator("[data-testid=trigger]").count() == 0
        assert "No event trigger matched" in card.locator("[data-testid=no-trigger]").inner_text()
        context.close()
        assert errors == [], f"the page logged errors: {errors}"

    # The dry run's log carries the same verdicts the page showed, and the campaigns
    # stand-in the one profile it would reach.
    [first, second, third] = dry_run.delivered("customer-profiles")
    profile_id = stored_profile_id(dry_run)
    assert first["received"]["EventTriggers"] == [
        {
            "EventTriggerName": "pixel-relay-purchase_success",
            "WouldStart": True,
            "Reason": "",
            "ProfileId": profile_id,
            "Campaign": DEMO_CAMPAIGN,
            "CampaignReached": True,
            "CampaignReason": "",
        }
    ]
    [held] = second["received"]["EventTriggers"]
    assert (held["WouldStart"], held["CampaignReached"]) == (False, False)
    assert third["received"]["EventTriggers"] == []
    [reached] = dry_run.standin("customer-profiles").campaigns.outbound_requests
    assert (reached.campaign_arn, reached.profile_id) == (DEMO_CAMPAIGN, profile_id)


def stored_profile_id(dry_run: Any) -> str:
    """The one profile the page's endpoint id has in the stand-in."""
    [record] = dry_run.delivered("customer-profiles")[:1]
    profiles = dry_run.standin("customer-profiles").profiles
    found = profiles.profile("pixel-relay-dev", "pixelRelayEndpointId", record["endpoint_id"])
    assert found is not None
    return str(found["ProfileId"])
