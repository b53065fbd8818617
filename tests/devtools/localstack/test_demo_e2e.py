"""The demo page in Chromium against the real local stack (`make dev`), end to end.

A click on the page goes through the GTM stand-in's image request, the pixel under
`chalice local`, moto's SQS, the consumer and the dry-run destination; what arrives is read
back from the dry run's JSON Lines file. Set UPDATE_SCREENSHOT=1 to refresh docs/demo.png,
the README's picture, from this run.
"""

from __future__ import annotations

import json
import os
import re
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.browser import BROWSER_TIMEOUT_MS, VISITOR_USER_AGENT, page_errors
from tests.stack_harness import CHROMIUM_IMAGE_ACCEPT, REPO, Output, banner_urls, local_stack

DELIVERY_MS = 30_000


def delivered(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Output, Path, str, str]]:
    log = tmp_path_factory.mktemp("dry-run") / "dry-run.jsonl"
    # A short visibility timeout, so the outage's retry arrives within the test. Pinpoint's
    # event shape and outage button are what these tests read (the default destination's
    # card, Customer Profiles with its triggers, is tested in test_demo_server.py).
    arguments = (
        *("--exit-after", "600", "--dry-run-log", str(log), "--visibility-timeout", "2"),
        *("--destinations", "pinpoint"),
    )
    with local_stack(*arguments) as (_, output):
        urls = banner_urls(output)
        yield output, log, urls.pixel, urls.demo


@pytest.fixture
def page(chromium: Any, stack: tuple[Output, Path, str, str]) -> Iterator[Any]:
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, user_agent=VISITOR_USER_AGENT
    )
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.extend(page_errors(message)))
    page.goto(stack[3])
    page.wait_for_selector("body[data-ready=true]")
    yield page
    context.close()
    assert errors == [], f"the page logged errors: {errors}"


def fresh_endpoint(page: Any, name: str) -> str:
    """A new endpoint id per test: the page also shows hits from earlier tests."""
    endpoint_id = f"e2e-{name}-{datetime.now(UTC):%H%M%S%f}"
    page.fill("#endpoint-id", endpoint_id)
    return endpoint_id


def answered_card(page: Any, endpoint_id: str, event: str) -> Any:
    """The newest card for this endpoint and event, once the pixel's answer is in."""
    card = (
        page.locator("[data-testid=hit]")
        .filter(has=page.locator("[data-testid=hit-endpoint]", has_text=endpoint_id))
        .filter(has=page.locator("[data-testid=hit-event]", has_text=event))
        .first
    )
    card.wait_for()
    page.wait_for_function(
        "el => el.dataset.status !== '' && el.dataset.gtm !== 'pending'",
        arg=card.element_handle(),
    )
    return card


def wait_delivered(page: Any, event_id: str | None) -> Any:
    return page.wait_for_selector(
        f"[data-testid=hit][data-event-id='{event_id}'][data-delivery=delivered]",
        timeout=DELIVERY_MS,
    )


def test_a_hit_from_the_page_reaches_the_dry_run_with_its_fields(
    page: Any, stack: tuple[Output, Path, str, str]
) -> None:
    _, log, _, _ = stack
    endpoint_id = fresh_endpoint(page, "fields")
    page.fill("#event-name", "add_to_cart")
    page.fill("#attr-name-1", "product")
    page.fill("#attr-value-1", "shoes & socks")
    page.fill("#metric-name", "price")
    page.fill("#metric-value", "49.90")
    sent_at = datetime.now(UTC)
    page.click("[data-testid=send]")

    card = answered_card(page, endpoint_id, "add_to_cart")
    assert (card.get_attribute("data-gtm"), card.get_attribute("data-status")) == (
        "succeeded",
        "200",
    )
    event_id = card.get_attribute("data-event-id")
    wait_delivered(page, event_id)

    [record] = [r for r in delivered(log) if r["event_id"] == event_id]
    assert record["endpoint_id"] == endpoint_id
    event = record["event"]
    assert event["EventType"] == "add_to_cart"
    assert event["Attributes"]["product"] == "shoes & socks"
    assert event["Metrics"] == {"price": 49.9}
    happened = datetime.fromisoformat(event["Timestamp"])
    assert abs(happened - sent_at) < timedelta(seconds=30)
    shown = json.loads(card.locator("[data-testid=delivered]").inner_text())
    assert shown == event


def test_a_refused_hit_shows_the_reason_and_never_reaches_the_queue(
    page: Any, stack: tuple[Output, Path, str, str]
) -> None:
    _, log, _, _ = stack
    endpoint_id = fresh_endpoint(page, "refused")
    page.click("[data-testid=try-profile-attribute]")
    card = answered_card(page, endpoint_id, "signup")
    assert (card.get_attribute("data-gtm"), card.get_attribute("data-status")) == (
        "failed",
        "400",
    )
    assert (
        card.locator("[data-testid=reason]")
        .inner_text()
        .endswith(
            "usat_plan: anonymous hits may not write this profile attribute"
            " (not in ALLOWED_USER_ATTRIBUTES)"
        )
    )
    event_id = card.get_attribute("data-event-id")
    # Anything enqueued would be delivered within a poll or two; nothing must be.
    page.wait_for_timeout(3000)
    assert [r for r in delivered(log) if r["event_id"] == event_id] == []
    assert card.get_attribute("data-delivery") == "never"


def test_the_pixel_loads_as_an_image_in_chromium_with_its_own_accept(
    page: Any, stack: tuple[Output, Path, str, str]
) -> None:
    _, _, pixel, _ = stack
    requests: list[Any] = []
    page.on("request", lambda request: requests.append(request))
    result = page.evaluate(
        """url => new Promise(done => {
            const image = new Image();
            image.onload = () => done(['load', image.naturalWidth, image.naturalHeight]);
            image.onerror = () => done(['error', 0, 0]);
            image.src = url;
        })""",
        f"{pixel}?event=direct_image&endpoint_id=e2e-direct&gtmcb=1",
    )
    assert result == ["load", 1, 1]
    # The headers as sent (Playwright's `headers` omits some until the answer is in).
    [image] = [r for r in requests if "/events" in r.url]
    assert image.all_headers().get("accept") == CHROMIUM_IMAGE_ACCEPT


def test_a_destination_outage_is_retried_then_delivered_once(
    page: Any, stack: tuple[Output, Path, str, str]
) -> None:
    output, log, _, _ = stack
    endpoint_id = fresh_endpoint(page, "outage")
    page.click("[data-testid=outage]")
    page.fill("#event-name", "purchase")
    page.click("[data-testid=send]")
    card = answered_card(page, endpoint_id, "purchase")
    assert card.get_attribute("data-status") == "200"
    event_id = card.get_attribute("data-event-id")
    wait_delivered(page, event_id)

    assert Counter(r["event_id"] for r in delivered(log))[event_id] == 1
    output.wait_for(
        lambda line: (
            re.search(r"consumer: batch of \d+: \d+ done, [1-9]\d* to retry", line) is not None
        ),
        1,
        "the failed first attempt",
    )

    if os.environ.get("UPDATE_SCREENSHOT"):
        page.click("[data-testid=try-long-value]")
        answered_card(page, endpoint_id, "review")
        page.fill("#event-name", "add_to_cart")
        page.click("[data-testid=send]")
        wait_delivered(
            page, answered_card(page, endpoint_id, "add_to_cart").get_attribute("data-event-id")
        )
        page.screenshot(path=str(REPO / "docs" / "demo.png"))


# `make dev` as shipped: Customer Profiles, the dev stage's trigger and campaign ------------


@pytest.fixture(scope="module")
def profiles_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, str]]:
    """The local stack with the default destination and the dev stage's settings:
    PROFILES_TRIGGER_EVENTS=purchase and its campaign (PROFILES_CAMPAIGNS)."""
    log = tmp_path_factory.mktemp("dry-run-profiles") / "dry-run.jsonl"
    arguments = ("--exit-after", "600", "--dry-run-log", str(log))
    with local_stack(*arguments) as (_, output):
        yield log, banner_urls(output).demo


def test_make_dev_shows_the_campaign_a_purchase_starts_and_not_again_inside_the_limit(
    chromium: Any, profiles_stack: tuple[Path, str]
) -> None:
    """The whole chain on one laptop: the page's GTM stand-in, the pixel under `chalice
    local`, SQS on moto (through the strict proxy), the consumer, the Customer Profiles
    stand-in set up as `make profiles-setup` would, and the campaigns stand-in."""
    log, demo = profiles_stack
    context = chromium.new_context(
        viewport={"width": 1280, "height": 900}, user_agent=VISITOR_USER_AGENT
    )
    page = context.new_page()
    page.set_default_timeout(BROWSER_TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.on("console", lambda message: errors.extend(page_errors(message)))
    page.goto(demo)
    page.wait_for_selector("body[data-ready=true]")
    endpoint_id = fresh_endpoint(page, "campaign")

    page.fill("#event-name", "purchase")
    page.click("[data-testid=send]")
    first = answered_card(page, endpoint_id, "purchase")
    first_id = first.get_attribute("data-event-id")
    wait_delivered(page, first_id)
    [record] = [r for r in delivered(log) if r["event_id"] == first_id]
    [verdict] = record["received"]["EventTriggers"]
    profile_id = verdict["ProfileId"]
    assert first.locator("[data-testid=trigger]").all_inner_texts() == [
        f"Campaign pixel-relay-demo would reach profile {profile_id}"
    ]

    page.fill("#event-name", "purchase")
    page.click("[data-testid=send]")
    page.wait_for_function(
        """endpoint => [...document.querySelectorAll("[data-testid=hit]")].filter(
            card => card.querySelector("[data-testid=hit-endpoint]").textContent.includes(endpoint)
        ).length === 2""",
        arg=endpoint_id,
    )
    second = answered_card(page, endpoint_id, "purchase")
    assert second.get_attribute("data-event-id") != first_id
    wait_delivered(page, second.get_attribute("data-event-id"))
    assert second.locator("[data-testid=trigger]").all_inner_texts() == [
        "Trigger pixel-relay-purchase matched; no campaign start:"
        " limit reached for this profile (1 per 1 DAYS)"
    ]
    context.close()
    assert errors == [], f"the page logged errors: {errors}"
