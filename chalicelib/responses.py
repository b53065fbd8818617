"""The pixel's HTTP answers: the GIF, a refusal, or "not enqueued" (or "maybe enqueued"), and
a beacon's JSON report.

A refusal's reason is in the body and in the `X-Pixel-Relay-Refusal` header: Chromium's
Opaque Response Blocking drops the body of a cross-origin image answer that is not an image,
but DevTools still shows its headers, and scripts may read the header through CORS.

All bodies are bytes: `app.py` declares every content type binary (`*/*`) so that API Gateway
returns the GIF as an image whatever the browser's Accept header, and with that setting
Chalice refuses `str` bodies.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Final
from urllib.parse import quote

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


REFUSAL_HEADER: Final = "X-Pixel-Relay-Refusal"
# Printable ASCII but "%", which starts an escape: what the refusal header keeps as it is.
_HEADER_SAFE: Final = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")
CORS_PREFLIGHT: Final = {
    "Access-Control-Allow-Methods": "GET, POST",
    # A text/plain POST needs no preflight; a page that sends another Content-Type gets one,
    # then a 415 it can read.
    "Access-Control-Allow-Headers": "Content-Type",
    "Access-Control-Max-Age": "86400",
}


def refusal_header(reason: str) -> str:
    """The reason as an ASCII header value: UTF-8 percent-encoded outside printable ASCII
    (and `%` itself), so `decodeURIComponent(value)` gives the body's text back. A lone
    surrogate (only a JSON event can carry one) is written `\\udXXX`, as in the body."""
    return quote(reason, safe=_HEADER_SAFE, errors="backslashreplace")


def with_cors(response: Response, allow_origin: str | None) -> Response:
    """Let a script on the page read this answer (fetch, sendBeacon's sibling), never with
    credentials; `allow_origin` None: not this page (or a preflight it may not pass)."""
    headers: dict[str, str | list[str]] = {**response.headers}
    if allow_origin is not None:
        headers["Access-Control-Allow-Origin"] = allow_origin
        headers["Access-Control-Expose-Headers"] = f"{REFUSAL_HEADER}, Retry-After"
    if allow_origin != "*":
        headers["Vary"] = "Origin"  # the answer differs by page
    response.headers = headers
    return response


def preflight() -> Response:
    """OPTIONS /events: the CORS preflight of a fetch() that sets its own headers."""
    return Response(body=b"", status_code=204, headers=dict(CORS_PREFLIGHT))


def pixel() -> Response:
    return Response(
        body=TRANSPARENT_GIF, status_code=200, headers={**NO_CACHE, "Content-Type": "image/gif"}
    )


def refused(reason: str, status: int = 400) -> Response:
    """A refusal (400; 413 or 415 for a beacon's request): the reason in the body and in
    the `X-Pixel-Relay-Refusal` header."""
    return _text(status, reason, {REFUSAL_HEADER: refusal_header(reason)})


def beacon_report(
    accepted: int,
    refused: Sequence[tuple[int, str]],
    unavailable: Sequence[int] = (),
    may_have_landed: Sequence[int] = (),
) -> Response:
    """A beacon's answer: 200 when every line is accepted or refused, 503 (retry the
    `unavailable` lines, with the same event_id) when SQS did not take some."""
    report: dict[str, Any] = {
        "accepted": accepted,
        "refused": [{"line": line, "reason": reason} for line, reason in refused],
    }
    headers: dict[str, str | list[str]] = {
        **NO_CACHE,
        "Content-Type": "application/json",
    }
    status = 200
    if unavailable:
        status = 503
        report["unavailable"] = list(unavailable)
        report["may_have_landed"] = list(may_have_landed)
        report["message"] = (
            "the unavailable lines were not recorded (the queue, or the signing keys, could "
            "not be reached): send them again. Those in "
            "may_have_landed may have been recorded (the queue did not answer in time): a retry "
            "is delivered once only if the line carries the same event_id, so give every line "
            "its own event_id (one the pixel assigns is not sent back)"
            if may_have_landed
            else "the unavailable lines were not recorded (the queue, or the signing keys, "
            "could not be reached): send them again"
        )
        headers["Retry-After"] = "1"
    # ensure_ascii: a reason may quote a parameter name with anything in it.
    body = json.dumps(report, ensure_ascii=True).encode("ascii")
    return Response(body=body, status_code=status, headers=headers)


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


def _text(status: int, message: str, extra: Mapping[str, str] | None = None) -> Response:
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
    Chalice's own answers (405 for another method, 500) get the no-cache headers too; an
    answer that says how it may be cached (the script, chalicelib/script.py) keeps its own.

    A request whose body was sent chunked but did not arrive is answered with
    `Connection: close`: `chalice local`'s server reads a body by Content-Length only, and
    would read the chunks left on a kept-alive connection as another request.
    """
    if request.headers.get("accept") is None:
        request.headers = CaseInsensitiveMapping({**request.headers, "accept": "*/*"})
    response = get_response(request)
    if "Cache-Control" not in response.headers:
        response.headers = {**response.headers, **NO_CACHE}
    if request.headers.get("transfer-encoding") is not None and not request.raw_body:
        response.headers = {**response.headers, "Connection": "close"}
    return response
