"""Pixel hits as API Gateway hands them to Lambda, and the bare route they are compared with.

The hits are what a GTM Custom Image tag sends: an event name, an endpoint id, a few event
attributes and metrics, sometimes a session and a timestamp, and GTM's cache buster. They
are generated from a seed, so every run and every process measures the same hits.
"""

from __future__ import annotations

import base64
import random
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, Final
from urllib.parse import quote

from chalice.app import Chalice, Response

from devtools.api_gateway import pixel_event

# The 1x1 transparent GIF the app answers (bench checks it is byte for byte the same).
GIF: Final = base64.b64decode("R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7")
CHROMIUM_IMAGE_ACCEPT: Final = (
    "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
)
BROWSER_HEADERS: Final = {
    "Accept": CHROMIUM_IMAGE_ACCEPT,
    "Accept-Encoding": "gzip, deflate, br",
    "Accept-Language": "en-GB,en;q=0.9",
    "Host": "abc123.execute-api.us-east-1.amazonaws.com",
    "Referer": "https://shop.example.com/products/shoes",
    "Sec-Fetch-Dest": "image",
    "Sec-Fetch-Mode": "no-cors",
    "Sec-Fetch-Site": "cross-site",
    "User-Agent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    " Chrome/156.0.0.0 Safari/537.36",
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https",
}
PAGES: Final = ("/", "/products/shoes", "/products/bags", "/cart", "/checkout", "/blog/sale")

LambdaHandler = Callable[[dict[str, Any], Any], dict[str, Any]]


def sample_queries(count: int, seed: int = 7, now: datetime | None = None) -> list[str]:
    """`count` realistic query strings over count/4 endpoints (a few hits per visitor)."""
    rng = random.Random(seed)
    now = now or datetime.now(UTC)
    endpoints = [f"ep-{rng.getrandbits(64):016x}" for _ in range(max(1, count // 4))]
    queries = []
    for number in range(count):
        endpoint = rng.choice(endpoints)
        page = rng.choice(PAGES)
        params = [
            ("event", "page_view"),
            ("endpoint_id", endpoint),
            ("evat_page", page),
            ("evat_title", "Shoes and bags | Example shop"),
        ]
        kind = number % 4
        if kind == 1:
            params = [
                ("event", "add_to_cart"),
                ("endpoint_id", endpoint),
                ("evat_product", rng.choice(("shoes", "bag", "belt"))),
                ("evmt_price", f"{rng.uniform(5, 200):.2f}"),
                ("evmt_quantity", str(rng.randint(1, 3))),
            ]
        elif kind == 2:
            started = now - timedelta(minutes=rng.randint(1, 30))
            params += [
                ("session_id", f"s-{rng.getrandbits(48):012x}"),
                ("session_start", started.isoformat(timespec="milliseconds")),
                ("timestamp", str(int((now - timedelta(seconds=5)).timestamp() * 1000))),
            ]
        elif kind == 3:
            params = [
                ("event", "purchase"),
                ("endpoint_id", endpoint),
                ("event_id", str(uuid.UUID(int=rng.getrandbits(128), version=4))),
                ("evat_order", f"o-{rng.getrandbits(32):08x}"),
                ("evat_currency", "EUR"),
                ("evmt_value", f"{rng.uniform(10, 500):.2f}"),
            ]
        params.append(("gtmcb", str(rng.getrandbits(31))))
        queries.append("&".join(f"{name}={quote(value, safe='')}" for name, value in params))
    return queries


def proxy_event(query: str, headers: dict[str, str] | None = None) -> dict[str, Any]:
    """An API Gateway (REST, Lambda proxy integration) event for GET /events, sent by
    Chromium unless other headers are given."""
    return pixel_event(query, BROWSER_HEADERS if headers is None else headers)


def bare_app() -> Chalice:
    """The baseline: a Chalice route that answers the same GIF and does nothing else."""
    app = Chalice(app_name="bare-pixel")

    @app.route("/events", methods=["GET"])
    def events() -> Response:
        return Response(body=GIF, status_code=200, headers={"Content-Type": "image/gif"})

    return app


def minimal_enqueue_app(sample_body: str) -> Chalice:
    """A bare route that sends one fixed message with boto3 and answers the GIF: the least
    any pixel Lambda that enqueues must do (no validation, no metrics, no logging)."""
    app = Chalice(app_name="minimal-enqueue")
    import boto3  # not at import: the bare baseline runs without it

    client = boto3.client("sqs")
    url = client.get_queue_url(QueueName="pixel-relay-dev-events")["QueueUrl"]

    @app.route("/events", methods=["GET"])
    def events() -> Response:
        client.send_message(QueueUrl=url, MessageBody=sample_body)
        return Response(body=GIF, status_code=200, headers={"Content-Type": "image/gif"})

    return app


def answered_gif(answer: dict[str, Any]) -> bool:
    """Whether a Lambda proxy answer is a 200 carrying the GIF."""
    body = answer.get("body") or ""
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else str(body).encode()
    return answer.get("statusCode") == 200 and raw == GIF
