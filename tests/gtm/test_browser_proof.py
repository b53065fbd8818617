"""The web tag in Chromium, its GTM runtime the strict emulator (devtools/gtm/page.mjs), against
the real local stack (`make dev`: chalice local, moto's SQS, the consumer, a dry run): 50 events
fired, the page left, every one delivered exactly once, in a handful of requests.

The page runs a container made by `ops gtm` for this stack (the template tag batched through
the stack's own GET /pixel-relay.js, permissions narrowed to it). Requests are counted by a
relay in front of the pixel (devtools/gtm/page_server.py), not by the browser, which may not
report a beacon sent as the page unloads.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.hits import HitPolicy
from devtools.gtm.page_server import GtmPageServer
from devtools.ops import gtm
from devtools.paths import ROOT
from tests.browser import BROWSER_TIMEOUT_MS, page_errors, visitor_browser
from tests.stack_harness import Output, banner_urls, local_stack

EVENTS = 50
MAX_REQUESTS = 6
DELIVERY_SECONDS = 40.0
# Once all 50 arrived, this long for a duplicate to show up.
SETTLE_SECONDS = 3.0

PROOF_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>pixel-relay proof</title></head>
<body><p>A shop page.</p>
<script type="module">
  import { startContainer } from '/gtm/page.mjs';
  const container = await (await fetch('/container.json')).json();
  window.dataLayer = window.dataLayer || [];
  startContainer(container);
  document.body.dataset.ready = 'true';
</script>
</body></html>
"""
LEFT_PAGE = "<!doctype html><title>left</title><p>You left the shop.</p>"


def delivered(log: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Output, Path, str]]:
    log = tmp_path_factory.mktemp("dry-run") / "dry-run.jsonl"
    with local_stack("--exit-after", "600", "--dry-run-log", str(log)) as (_, output):
        yield output, log, banner_urls(output).pixel


@pytest.fixture(scope="module")
def visitor(chromium: Any) -> Iterator[Any]:
    yield from visitor_browser(chromium)


@pytest.fixture
def shop(stack: tuple[Output, Path, str]) -> Iterator[GtmPageServer]:
    """The shop's pages, the emulator, and the relay to the stack's pixel."""
    pixel = stack[2].removesuffix("/events")
    server = GtmPageServer(pixel, {})
    with server:
        container = gtm.container(server.relay_url, HitPolicy(), ["proof"])
        server.pages.update(
            {
                "/proof.html": (PROOF_PAGE.encode(), "text/html; charset=utf-8"),
                "/left.html": (LEFT_PAGE.encode(), "text/html; charset=utf-8"),
                "/container.json": (gtm.render(container).encode(), "application/json"),
            }
        )
        yield server


def test_fifty_events_fired_then_the_page_left_arrive_once_each_in_few_requests(
    visitor: Any, stack: tuple[Output, Path, str], shop: GtmPageServer
) -> None:
    _, log, _ = stack
    endpoint = f"proof-{time.time_ns()}"
    context = visitor.new_context()
    errors: list[str] = []
    try:
        page = context.new_page()
        page.set_default_timeout(BROWSER_TIMEOUT_MS)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.on("console", lambda message: errors.extend(page_errors(message)))
        page.goto(shop.url + "proof.html")
        page.wait_for_selector("body[data-ready=true]")
        page.evaluate(
            """([endpoint, count]) => {
                for (let n = 0; n < count; n++) {
                  window.dataLayer.push({event: 'proof', endpointId: endpoint,
                                         attributes: {n: String(n)}});
                }
            }""",
            [endpoint, EVENTS],
        )
        # Every tag run handed its hit to pixel-relay.js (succeeded), none sent an image.
        page.wait_for_function(
            "n => window.pixelRelayGtm.fired.filter(f => f.outcome === 'success').length === n",
            arg=EVENTS,
        )
        state = page.evaluate("window.pixelRelayGtm")
        assert state["errors"] == []
        assert [f["tag"] for f in state["fired"]] == ["pixel-relay"] * EVENTS
        page.goto(shop.url + "left.html")  # pagehide: the last batch leaves now
    finally:
        context.close()
    assert errors == []

    deadline = time.monotonic() + DELIVERY_SECONDS
    ours: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        ours = [r for r in delivered(log) if r["endpoint_id"] == endpoint]
        if len(ours) >= EVENTS:
            break
        time.sleep(0.2)
    time.sleep(SETTLE_SECONDS)
    ours = [r for r in delivered(log) if r["endpoint_id"] == endpoint]
    numbers = sorted(int(r["event"]["Attributes"]["n"]) for r in ours)
    assert numbers == list(range(EVENTS)), "each event exactly once"
    assert len({r["event_id"] for r in ours}) == EVENTS

    relayed = shop.requests()
    hits = [r for r in relayed if r.path.partition("?")[0] == "/events"]
    assert all(r.method == "POST" for r in hits), "no hit fell back to an image"
    assert all(r.status == 200 for r in hits), [r.answer for r in hits]
    assert 1 <= len(hits) <= MAX_REQUESTS
    assert sum(len(r.body.splitlines()) for r in hits) == EVENTS
    scripts = [r for r in relayed if r.path.startswith("/pixel-relay.js")]
    assert len(scripts) == 1  # loaded once for 50 tag fires (injectScript's cache token)


def test_the_browser_globals_list_holds_every_global_of_this_chromium(chromium: Any) -> None:
    """The emulator's first-token rule reads devtools/gtm/browser-globals.json: it must name
    every global a fresh page of the Chromium under test has (regenerate it if not)."""
    listed = set(json.loads((ROOT / "devtools/gtm/browser-globals.json").read_text())["names"])
    page = chromium.new_page()
    try:
        names = page.evaluate(
            """() => { const seen = new Set();
                for (let o = window; o; o = Object.getPrototypeOf(o))
                  for (const n of Object.getOwnPropertyNames(o)) seen.add(n);
                return [...seen]; }"""
        )
    finally:
        page.close()
    assert set(names) - listed == set(), "regenerate with: .venv/bin/python -m devtools.gtm.globals"
