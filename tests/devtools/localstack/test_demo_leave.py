"""'Leave the page' on the demo page, in Chromium against the real local stack (`make dev`).

The link pushes the form's event and navigates to /left at once; the push fires the Custom
Image tag (GET through the page's relay) and a beacon (`navigator.sendBeacon`, POST /events
straight to the pixel, cross-origin), each with its own event id. The truth is the dry run's
JSON Lines file; /left must show the same.

Measured (Debian's Chromium 156 on loopback): with nothing between the browser and the relay,
the Image request has already left the browser when the navigation commits, in every trial
(10 of 10, also under DevTools latency emulation of 150 ms, 1.5 s and 2 s, which delays the
answers, not the sending): Chromium reports it `net::ERR_ABORTED`, but the relay has it, and
it is delivered.
So the plain test asserts the beacon arrives and that /left tells the truth about the Image
hit, whatever became of it; it does not claim the Image hit is lost. The Image hit is lost
when its request is still in the browser as the page unloads (a connection not yet open, a
radio waking up): the second test holds it there, and only there is its loss asserted.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from devtools.localstack.demo_server import DemoServer
from tests.browser import BROWSER_TIMEOUT_MS, VISITOR_USER_AGENT, page_errors
from tests.stack_harness import Output, banner_urls, local_stack

DELIVERY_MS = 30_000
# /left calls an Image hit lost when nothing came through the relay within 5 s of leaving,
# arrived once delivered (within the delivery wait).
IMAGE_VERDICT_MS = DELIVERY_MS
# Anything the relay passed on is delivered within a poll or two of the beacon.
SETTLE_SECONDS = 3.0


def delivered(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Output, Path, str, str]]:
    log = tmp_path_factory.mktemp("dry-run") / "dry-run.jsonl"
    with local_stack("--exit-after", "600", "--dry-run-log", str(log)) as (_, output):
        urls = banner_urls(output)
        yield output, log, urls.pixel, urls.demo


@pytest.fixture
def context(chromium: Any) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, user_agent=VISITOR_USER_AGENT
    )
    yield context
    context.close()


@pytest.fixture
def page(context: Any, stack: tuple[Output, Path, str, str]) -> Iterator[Any]:
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.extend(page_errors(message)))
    page.goto(stack[3])
    page.wait_for_selector("body[data-ready=true]")
    yield page
    assert errors == [], f"the pages logged errors: {errors}"


def push_and_leave(page: Any, name: str) -> str:
    """Fill the form for a fresh endpoint, follow the link, and wait for /left."""
    endpoint_id = f"e2e-leave-{name}-{datetime.now(UTC):%H%M%S%f}"
    page.fill("#endpoint-id", endpoint_id)
    page.fill("#event-name", "checkout")
    page.fill("#attr-value-1", "shoes & socks")
    page.click("[data-testid=leave-page]")
    page.wait_for_url("**/left")
    page.wait_for_selector("body[data-ready=true]")
    return endpoint_id


def outcome(page: Any, transport: str) -> Any:
    return page.locator(f"[data-testid=leave-outcome][data-transport={transport}]")


def wait_verdict(page: Any, transport: str, verdicts: tuple[str, ...], timeout: int) -> str:
    page.wait_for_function(
        "([t, v]) => { const row = document.querySelector("
        "`[data-testid=leave-outcome][data-transport=${t}]`);"
        " return row !== null && v.includes(row.dataset.verdict); }",
        arg=[transport, list(verdicts)],
        timeout=timeout,
    )
    verdict: str | None = outcome(page, transport).get_attribute("data-verdict")
    assert verdict is not None
    return verdict


def fired(page: Any) -> dict[str, Any]:
    """What demo.js recorded as the link was followed: both hits, their ids and the line."""
    record = page.evaluate("() => JSON.parse(localStorage.getItem('pixel-relay-demo.left-page'))")
    assert isinstance(record, dict)
    return record


def test_the_landing_page_without_a_push_says_there_is_nothing_to_show(chromium: Any) -> None:
    with DemoServer("http://127.0.0.1:9", list, lambda calls: None) as demo:
        page = chromium.new_page()
        try:
            page.goto(demo.url + "left")
            page.wait_for_selector("body[data-ready=true]", timeout=BROWSER_TIMEOUT_MS)
            assert (
                page.locator("[data-testid=left-what]")
                .inner_text()
                .startswith("Nothing to show: follow the “Push and leave the page” link")
            )
            assert page.locator("[data-testid=leave-outcome]").count() == 0
        finally:
            page.close()


def test_a_beacon_fired_as_the_page_unloads_arrives_and_the_page_tells_the_truth(
    page: Any, stack: tuple[Output, Path, str, str]
) -> None:
    _, log, pixel, _ = stack
    endpoint_id = push_and_leave(page, "plain")
    record = fired(page)
    image_id, beacon_id = record["image"]["eventId"], record["beacon"]["eventId"]
    assert image_id != beacon_id
    assert record["beacon"]["queued"] is True
    assert record["beacon"]["url"] == pixel  # straight at the pixel, not through the relay

    assert wait_verdict(page, "beacon", ("arrived", "lost"), DELIVERY_MS) == "arrived"
    [beacon] = [r for r in delivered(log) if r["event_id"] == beacon_id]
    assert beacon["endpoint_id"] == endpoint_id
    assert beacon["event"]["EventType"] == "checkout"
    assert beacon["event"]["Attributes"]["product"] == "shoes & socks"

    # The Image hit: arrived or lost, /left must agree with the dry run.
    image_verdict = wait_verdict(page, "image", ("arrived", "lost"), IMAGE_VERDICT_MS)
    time.sleep(SETTLE_SECONDS)
    images = [r for r in delivered(log) if r["event_id"] == image_id]
    assert image_verdict == ("arrived" if images else "lost")
    assert outcome(page, "image").get_attribute("data-verdict") == image_verdict
    if images:
        # Same event data, two event ids: the relay had the request before it was cancelled.
        [image] = images
        assert image["endpoint_id"] == endpoint_id
        for field in ("EventType", "Attributes", "Metrics"):
            assert image["event"][field] == beacon["event"][field]
    summary = page.locator("[data-testid=left-summary]").inner_text()
    lost = "arrived" if images else "was lost"
    assert summary == f"The beacon arrived; the Image hit {lost}."


def test_an_image_hit_still_in_the_browser_as_the_page_unloads_is_lost_the_beacon_is_not(
    context: Any, stack: tuple[Output, Path, str, str]
) -> None:
    _, log, _, demo = stack
    demo_origin = demo.rstrip("/")
    held: list[Any] = []

    def is_image_hit(url: str) -> bool:
        return url.startswith(demo_origin) and urlsplit(url).path == "/events"

    # Held in the browser, as while a connection to the pixel is still being opened.
    context.route(is_image_hit, lambda route: held.append(route))
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    page.goto(demo)
    page.wait_for_selector("body[data-ready=true]")
    push_and_leave(page, "held")
    record = fired(page)
    image_id, beacon_id = record["image"]["eventId"], record["beacon"]["eventId"]
    [route] = held
    assert parse_qs(urlsplit(route.request.url).query)["event_id"] == [image_id]
    route.continue_()  # the page is gone: Chromium does not send it now

    assert wait_verdict(page, "beacon", ("arrived", "lost"), DELIVERY_MS) == "arrived"
    assert wait_verdict(page, "image", ("arrived", "lost"), IMAGE_VERDICT_MS) == "lost"
    time.sleep(SETTLE_SECONDS)
    ids = {r["event_id"] for r in delivered(log)}
    assert beacon_id in ids
    assert image_id not in ids
    journal = page.evaluate("() => fetch('/api/hits').then(r => r.json())")
    assert record["image"]["hitId"] not in {entry["id"] for entry in journal}
    image_row = outcome(page, "image")
    assert image_row.locator("[data-step=pixel] strong").inner_text() == "No answer"
    assert image_row.locator("[data-step=delivery] strong").inner_text() == "Not delivered"
    assert (
        page.locator("[data-testid=left-summary]").inner_text()
        == "The beacon arrived; the Image hit was lost."
    )
