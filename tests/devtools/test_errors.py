"""An error as one line: what `ops` and the move task print instead of a traceback or an
HTML page."""

from __future__ import annotations

import urllib.error
from typing import Any

from botocore.exceptions import ClientError

from devtools.errors import one_line

HTML = (
    "<!doctype html>\n<html lang=en>\n<title>500 Internal Server Error</title>\n"
    "<h1>Internal Server Error</h1>\n<p>The server encountered an internal error</p>\n"
)


def client_error(status: int, code: str, message: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "ListMessageMoveTasks")


def test_an_html_page_is_named_by_its_title() -> None:
    assert one_line(client_error(500, "500", HTML)) == (
        "ListMessageMoveTasks failed: HTTP 500: an HTML page (500 Internal Server Error),"
        " not an answer from the service"
    )


def test_a_service_error_keeps_its_code_and_message_on_one_line() -> None:
    error = client_error(403, "AccessDenied", "User: x is not\nauthorized")
    assert one_line(error) == (
        "ListMessageMoveTasks failed: HTTP 403 AccessDenied: User: x is not authorized"
    )


def test_network_errors_are_their_reason() -> None:
    refused = urllib.error.URLError(ConnectionRefusedError(111, "Connection refused"))
    assert one_line(refused) == "[Errno 111] Connection refused"
    assert one_line(OSError("Network is unreachable")) == "Network is unreachable"
    assert len(one_line(ValueError("x" * 1000))) == 300
