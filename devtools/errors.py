"""An AWS or network error as one line an operator can read: the call, the HTTP status, the
service's code and message. Never a traceback, and never the HTML page a proxy, a load
balancer or a local emulator answers instead of the service (shown by its title)."""

from __future__ import annotations

import re
import urllib.error
from typing import Final

from botocore.exceptions import ClientError

MAX_CHARS: Final = 300
_TITLE: Final = re.compile(r"<title>(.*?)</title>", re.IGNORECASE | re.DOTALL)
_HTML: Final = re.compile(r"<!doctype html|<html", re.IGNORECASE)


def plain(text: str) -> str:
    """`text` on one line, at most MAX_CHARS; an HTML page as "an HTML page (its title)"."""
    if _HTML.search(text):
        title = _TITLE.search(text)
        named = f" ({' '.join(title.group(1).split())})" if title else ""
        return f"an HTML page{named}, not an answer from the service"
    line = " ".join(text.split())
    return line if len(line) <= MAX_CHARS else line[: MAX_CHARS - 1] + "…"


def one_line(error: BaseException) -> str:
    """The error as one line: for an AWS call, "<operation> failed: HTTP <status> <code>:
    <message>"; for a network error, its reason."""
    if isinstance(error, ClientError):
        response = error.response
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
        code = str(response.get("Error", {}).get("Code", ""))
        message = plain(str(response.get("Error", {}).get("Message", "")))
        what = " ".join(part for part in (f"HTTP {status}" if status else "", code) if part)
        if code == str(status):  # no error code of its own: the status said it already
            what = f"HTTP {status}"
        return f"{error.operation_name} failed: {what}: {message}".replace(": :", ":")
    if isinstance(error, urllib.error.HTTPError):
        return f"HTTP {error.code} {plain(str(error.reason))}"
    if isinstance(error, urllib.error.URLError):
        return plain(str(error.reason))
    return plain(str(error)) or type(error).__name__
