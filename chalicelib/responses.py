"""The pixel's HTTP answers: the GIF, a refusal, or "not enqueued" (or "maybe enqueued").

All bodies are bytes: `app.py` declares every content type binary (`*/*`) so that API Gateway
returns the GIF as an image whatever the browser's Accept header, and with that setting
Chalice refuses `str` bodies.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import Final

from chalice.app import CaseInsensitiveMapping, Request, Response

# A 1x1 transparent GIF89a (42 bytes, the one most pixels serve).
TRANSPARENT_GIF: Final = base64.b64decode(
    "R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
)

# A pixel that a browser or proxy caches stops counting repeat events.
NO_CACHE: Final = {
    "Cache-Control": "no-store, no-cache, must-revalidate, max-age=0",
    "Pragma": "no-cache",
    "Expires": "Thu, 01 Jan 1970 00:00:00 GMT",
    "X-Content-Type-Options": "nosniff",
}


def pixel() -> Response:
    return Response(
        body=TRANSPARENT_GIF, status_code=200, headers={**NO_CACHE, "Content-Type": "image/gif"}
    )


def refused(reason: str) -> Response:
    return _text(400, reason)


def unavailable(may_have_landed: bool = False) -> Response:
    """503. "Not recorded" only when certain: when the queue's answer never came, SQS may
    have taken the event; a retry that sends the same event_id is then delivered once."""
    # Retry-After lets a well-behaved client back off; GTM simply reports a failed tag.
    if may_have_landed:
        message = (
            "event may have been recorded: the queue did not answer in time; "
            "a retry with the same event_id is delivered once"
        )
    else:
        message = "event not recorded: queue unavailable, try again"
    return _text(503, message, {"Retry-After": "1"})


def _text(status: int, message: str, extra: dict[str, str] | None = None) -> Response:
    headers: dict[str, str | list[str]] = {
        **NO_CACHE,
        "Content-Type": "text/plain; charset=utf-8",
        **(extra or {}),
    }
    # A parameter name in a refusal may hold anything the query string did.
    body = (message + "\n").encode("utf-8", "backslashreplace")
    return Response(body=body, status_code=status, headers=headers)


def pixel_middleware(request: Request, get_response: Callable[[Request], Response]) -> Response:
    """Chalice HTTP middleware: every client gets an answer it can use, and none is cached.

    Chalice answers 400 to a binary response unless the request's Accept matches a binary
    type. With `*/*` declared binary any Accept matches, but a missing one does not; some
    clients (mail proxies, bots, old browsers) send none, and a pixel answers everyone.
    Chalice's own answers (405 for another method, 500) get the no-cache headers too.
    """
    if request.headers.get("accept") is None:
        request.headers = CaseInsensitiveMapping({**request.headers, "accept": "*/*"})
    response = get_response(request)
    response.headers = {**response.headers, **NO_CACHE}
    return response
