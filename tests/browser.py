"""Helpers for tests that drive the demo page in Debian's Chromium through Playwright."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Headless Chromium says "HeadlessChrome" in its User-Agent, which the pixel's bot filter
# refuses (rightly: headless browsers are how crawlers run tags). Tests that stand for a
# visitor present the User-Agent a visitor's Chromium sends.
VISITOR_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
BROWSER_TIMEOUT_MS = 10_000


def launch_chromium() -> Iterator[Any]:
    """A headless Chromium; skipped where it is not installed, except in CI, where a
    missing browser must fail the run rather than hide the browser tests."""
    if not CHROMIUM.exists():
        message = f"{CHROMIUM} is missing: apt-get install -y chromium"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
        yield browser
        browser.close()


def page_errors(message: Any) -> list[str]:
    """A console error, except Chromium's note on each refused image (that is the point)."""
    if message.type != "error" or message.text.startswith("Failed to load resource"):
        return []
    return [message.text]


def newest_hit(page: Any, count: int) -> Any:
    """The card on top once there are `count` hit cards and its answer is in."""
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=hit]').length === n", arg=count
    )
    card = page.locator("[data-testid=hit]").first
    page.wait_for_function(
        "el => el.dataset.status !== '' && el.dataset.gtm !== 'pending'",
        arg=card.element_handle(),
    )
    return card


def visitor_browser(chromium: Any) -> Iterator[Any]:
    """A second Chromium whose own User-Agent is a visitor's. A context's `user_agent` is an
    override of each page's requests; a beacon sent as its page unloads is sent by the
    browser without it (seen: Chromium 150 sent HeadlessChrome's), so tests of unloading pages
    need the browser itself to say it."""
    browser = chromium.browser_type.launch(
        executable_path=str(CHROMIUM), args=[f"--user-agent={VISITOR_USER_AGENT}"]
    )
    yield browser
    browser.close()
