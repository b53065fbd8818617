"""A body sent `Transfer-Encoding: chunked`, over a raw socket on a kept-alive connection.

`chalice local`'s server (what `make dev` and plain `chalice local` run) reads a body by its
Content-Length only: the chunks stayed on the connection and were read as a second request
(`400 Bad request syntax ('1b')`). The pixel now answers such a request 411 and closes the
connection, so the chunks are never read as a request; the loopback servers of the
development tooling (stand-ins, fault proxy, demo page: tests/devtools/test_loopback.py)
read chunked bodies.
"""

from __future__ import annotations

import re
import socket

from tests.integration.harness import CHROMIUM_USER_AGENT, Pipeline

STATUS_LINE = re.compile(rb"(?=HTTP/1\.[01] [0-9]{3} )")
HIT = b"event=view&endpoint_id=ep-1"
LENGTH_REQUIRED = (
    b"body was sent with Transfer-Encoding and did not arrive; send it with a Content-Length"
    b" (sendBeacon and fetch with a string body do)\n"
)


def exchange(base: str, request: bytes) -> list[bytes]:
    """Every answer the server writes on one connection until it closes it (or goes quiet
    for 3 s, which a kept-alive connection does)."""
    host, port = base.removeprefix("http://").rsplit(":", 1)
    received = b""
    with socket.create_connection((host, int(port)), timeout=3) as connection:
        connection.sendall(request)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    return [answer for answer in STATUS_LINE.split(received) if answer]


def chunked(body: bytes) -> bytes:
    return f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"


def head(method: str, target: str, *extra: str) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", "Host: pixel", f"User-Agent: {CHROMIUM_USER_AGENT}"]
    return ("\r\n".join([*lines, *extra]) + "\r\n\r\n").encode()


def test_a_chunked_beacon_is_refused_411_and_its_chunks_never_read_as_a_request(
    pipeline: Pipeline, chalice_local: str
) -> None:
    request = head("POST", "/events", "Content-Type: text/plain", "Transfer-Encoding: chunked")
    [answer] = exchange(chalice_local, request + chunked(HIT))
    assert answer.startswith(b"HTTP/1.1 411 ")
    assert b"\r\nConnection: close\r\n" in answer
    assert answer.endswith(LENGTH_REQUIRED)
    assert pipeline.queued() == 0


def test_a_get_with_a_chunked_body_is_answered_once_and_the_connection_closed(
    pipeline: Pipeline, chalice_local: str
) -> None:
    request = head("GET", "/events?" + HIT.decode(), "Transfer-Encoding: chunked")
    [answer] = exchange(chalice_local, request + chunked(b"ignored"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert b"\r\nConnection: close\r\n" in answer
    assert pipeline.queued() == 1


def test_bodies_with_a_content_length_keep_the_connection_alive(
    pipeline: Pipeline, chalice_local: str
) -> None:
    beacon = head("POST", "/events", "Content-Type: text/plain", f"Content-Length: {len(HIT)}")
    answers = exchange(chalice_local, beacon + HIT + beacon + HIT)
    assert [answer.split(b"\r\n", 1)[0] for answer in answers] == [b"HTTP/1.1 200 OK"] * 2
    assert all(b"Connection: close" not in answer for answer in answers)
    assert pipeline.queued() == 2
