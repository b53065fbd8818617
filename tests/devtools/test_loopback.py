"""The loopback servers of the development tooling (stand-ins, fault proxy, demo page) read a
request body framed either way HTTP/1.1 allows: by Content-Length, or `Transfer-Encoding:
chunked` (RFC 9112, section 7.1), read to its end so that its chunks are never read as
another request on a kept-alive connection. Over raw sockets."""

from __future__ import annotations

import hashlib
import json
import re
import socket
import uuid
from collections.abc import Iterator

import boto3
import pytest

from devtools.loopback import LoopbackHandler, LoopbackService, QuietServer, ServiceServer
from tests.fault_proxy import FaultProxy

STATUS_LINE = re.compile(rb"(?=HTTP/1\.[01] [0-9]{3} )")
LIMIT = 64


class EchoServer(LoopbackService):
    """Answers a POST with its body's length and digest, at most LIMIT bytes (413 beyond);
    HTTP/1.1, so a connection stays open between requests."""

    _name = "echo server"

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _EchoHandler, self)


class _EchoHandler(LoopbackHandler[EchoServer]):
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:
        body = self.read_body_within(LIMIT)
        if body is None:
            self.send_json(413, {"error": "too large"})
            return
        self.send_json(200, {"length": len(body), "sha256": hashlib.sha256(body).hexdigest()})


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    with EchoServer("127.0.0.1", 0) as server:
        yield server


def exchange(url: str, data: bytes) -> list[tuple[int, bytes]]:
    """(status, body) of every answer on one connection, until the server closes it or
    stays quiet for a second (a kept-alive connection)."""
    host, port = url.removeprefix("http://").rsplit(":", 1)
    received = b""
    with socket.create_connection((host, int(port)), timeout=1) as connection:
        connection.sendall(data)
        try:
            while chunk := connection.recv(65536):
                received += chunk
        except TimeoutError:
            pass
    answers = []
    for answer in STATUS_LINE.split(received):
        if answer:
            head, _, body = answer.partition(b"\r\n\r\n")
            answers.append((int(head.split(b" ", 2)[1]), body))
    return answers


def post(*headers: str, body: bytes = b"", path: str = "/echo") -> bytes:
    lines = [f"POST {path} HTTP/1.1", "Host: loopback", *headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def digest(body: bytes) -> bytes:
    return json.dumps({"length": len(body), "sha256": hashlib.sha256(body).hexdigest()}).encode()


CHUNKED = b"5;name=value\r\nhello\r\n7\r\n, world\r\n0\r\nX-Trailer: yes\r\n\r\n"


def test_a_chunked_body_is_read_whole_and_the_next_request_is_served(echo: EchoServer) -> None:
    """Before: the chunks were read as a second request (`400 Bad request syntax`)."""
    second = post("Content-Length: 3", body=b"abc")
    answers = exchange(echo.url, post("Transfer-Encoding: chunked", body=CHUNKED) + second)
    assert answers == [(200, digest(b"hello, world")), (200, digest(b"abc"))]


def test_a_chunked_body_over_the_limit_is_drained_and_answered_413(echo: EchoServer) -> None:
    big = b"x" * (LIMIT + 1)
    body = f"{len(big):x}\r\n".encode() + big + b"\r\n0\r\n\r\n"
    answers = exchange(echo.url, post("Transfer-Encoding: chunked", body=body) + post())
    assert [status for status, _ in answers] == [413, 200]


@pytest.mark.parametrize(
    ("headers", "body", "status"),
    [
        (("Transfer-Encoding: chunked",), b"zz\r\nhello\r\n0\r\n\r\n", 400),
        (("Transfer-Encoding: chunked",), b"3\r\nhello\r\n0\r\n\r\n", 400),
        (("Transfer-Encoding: gzip, chunked",), CHUNKED, 501),
    ],
    ids=["size-not-hex", "chunk-longer-than-its-size", "another-coding"],
)
def test_a_body_that_cannot_be_read_is_refused_and_the_connection_closed(
    echo: EchoServer, headers: tuple[str, ...], body: bytes, status: int
) -> None:
    [(answered, _)] = exchange(echo.url, post(*headers, body=body) + post())
    assert answered == status


def test_with_both_framings_transfer_encoding_wins_and_the_connection_closes(
    echo: EchoServer,
) -> None:
    request = post("Transfer-Encoding: chunked", "Content-Length: 3", body=CHUNKED)
    assert exchange(echo.url, request + post()) == [(200, digest(b"hello, world"))]


def test_the_fault_proxy_relays_a_chunked_body_with_its_length(moto_url: str) -> None:
    """The proxy keeps connections alive: a chunked SendMessage reaches SQS whole, and the
    next call on the same connection is served."""
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    queue_url = sqs.create_queue(QueueName=f"chunked-{uuid.uuid4().hex}")["QueueUrl"]
    call = json.dumps({"QueueUrl": queue_url, "MessageBody": "chunked"}).encode()
    sqs_headers = (
        "X-Amz-Target: AmazonSQS.SendMessage",
        "Content-Type: application/x-amz-json-1.0",
        "Authorization: AWS4-HMAC-SHA256 Credential=testing/20261207/us-east-1/sqs/aws4_request,"
        " SignedHeaders=host, Signature=0",
    )
    chunked_call = f"{len(call):x}\r\n".encode() + call + b"\r\n0\r\n\r\n"
    with FaultProxy(moto_url) as proxy:
        answers = exchange(
            proxy.url,
            post("Transfer-Encoding: chunked", *sqs_headers, body=chunked_call, path="/")
            + post(f"Content-Length: {len(call)}", *sqs_headers, body=call, path="/"),
        )
        assert proxy.calls["SendMessage"] == 2
    assert [status for status, _ in answers] == [200, 200], answers
    messages = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10)["Messages"]
    assert [message["Body"] for message in messages] == ["chunked", "chunked"]
