"""`GET /pixel-relay.js`: the script the web tag injects to batch its hits into beacons.

The source is `static/pixel-relay.js`, shipped in the bundle beside this module and read
once per container. It is answered as it is (no `Content-Encoding`: API Gateway REST does
not compress unless the API enables it, and the file is small), as JavaScript, cacheable by
browsers and CDNs for a day (a changed script reaches every page within a day), with an
`ETag` so a revalidation costs a 304. The tag loads it with GTM's `injectScript`; when it
cannot load, the tag sends each hit as an image instead (docs/gtm-setup.md).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Final

from chalice.app import Response

SOURCE: Final = Path(__file__).resolve().parent / "static" / "pixel-relay.js"
# The tag's injectScript has no size limit, but a tag's script is on every page: kept small.
MAX_BYTES: Final = 16 * 1024
MAX_AGE_SECONDS: Final = 86_400
CONTENT_TYPE: Final = "text/javascript; charset=utf-8"


@cache
def source() -> tuple[bytes, str]:
    """The script's bytes and their ETag, read once per container."""
    body = SOURCE.read_bytes()
    if len(body) > MAX_BYTES:  # a packaging mistake, caught by the tests before any deploy
        raise RuntimeError(f"{SOURCE.name} is {len(body)} bytes; at most {MAX_BYTES}")
    return body, '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def script_response(headers: Mapping[str, str]) -> Response:
    """The script, or 304 when the browser's `If-None-Match` names this version."""
    body, etag = source()
    common: dict[str, str | list[str]] = {
        "Cache-Control": f"public, max-age={MAX_AGE_SECONDS}",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
        # Any page may load it, also one that isolates itself (COEP: require-corp).
        "Cross-Origin-Resource-Policy": "cross-origin",
        "Access-Control-Allow-Origin": "*",
    }
    wanted = headers.get("if-none-match") or ""
    if etag in (tag.strip() for tag in wanted.split(",")) or wanted.strip() == "*":
        return Response(body=b"", status_code=304, headers=common)
    return Response(body=body, status_code=200, headers={**common, "Content-Type": CONTENT_TYPE})
