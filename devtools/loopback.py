"""The HTTP server every local stand-in, the fault proxy and the demo page share: its life,
and the request handler plumbing (quiet log, body reading, answers).

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import http.client
import io
import json
import re
import sys
import threading
import urllib.parse
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Generic, NoReturn, Self, TypeVar, cast

# How often serve_forever checks for shutdown: stop() returns within this.
POLL_SECONDS: Final = 0.05
_DRAIN_CHUNK: Final = 64 * 1024
# A chunk-size line (size and extensions) or a trailer line longer than this is refused.
_MAX_FRAMING_LINE: Final = 4096
_CHUNK_SIZE: Final = re.compile(rb"[0-9A-Fa-f]{1,16}")


class BodyFramingError(ValueError):
    """When a request's body is framed in a way the server cannot read (a malformed chunked
    body, a transfer coding other than chunked); the handler has answered it already."""


def read_chunked(rfile: io.BufferedIOBase, limit: int | None = None) -> bytes | None:
    """A `Transfer-Encoding: chunked` body (RFC 9112, section 7.1) read to its end, trailer
    fields included, so that nothing of it is left to be read as another request. None when
    its data is over `limit` (then read to the end and discarded); BodyFramingError when it
    is not a chunked body."""
    parts: list[bytes] = []
    total = 0
    while True:
        size_text = _framing_line(rfile).split(b";", 1)[0].strip()  # extensions ignored
        if not _CHUNK_SIZE.fullmatch(size_text):
            raise BodyFramingError("a chunk size is not hexadecimal")
        size = int(size_text, 16)
        if size == 0:
            break
        total += size
        keep = limit is None or total <= limit
        remaining = size
        while remaining:
            data = rfile.read(min(remaining, _DRAIN_CHUNK))
            if not data:
                raise BodyFramingError("the body ends inside a chunk")
            if keep:
                parts.append(data)
            remaining -= len(data)
        if _framing_line(rfile).strip():
            raise BodyFramingError("a chunk is longer than its size")
    while _framing_line(rfile).strip():
        pass  # trailer fields: not used
    if limit is not None and total > limit:
        return None
    return b"".join(parts)


def _framing_line(rfile: io.BufferedIOBase) -> bytes:
    line = rfile.readline(_MAX_FRAMING_LINE + 1)
    if not line.endswith(b"\n") or len(line) > _MAX_FRAMING_LINE:
        raise BodyFramingError("the chunked body ends early or has an overlong line")
    return line


class QuietServer(ThreadingHTTPServer):
    """A threaded server on loopback that stays quiet when a client hangs up (a read
    timeout, a reload, a closed tab do exactly that) and never keeps the process alive."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError | BodyFramingError):
            return  # a client that hung up, or a body already answered 400 or 501
        super().handle_error(request, client_address)


class LoopbackService:
    """A local server's life: start (port 0 picks a free port), serve on daemon threads,
    stop, its URL, and use as a context manager. Subclasses build the server and may add
    loops of their own; `_stopping` is set while they stop, for loops and slow answers."""

    _name = "loopback server"

    def __init__(self, host: str, port: int) -> None:
        self._address = (host, port)
        self._stopping = threading.Event()
        self._server: QuietServer | None = None
        self._threads: list[threading.Thread] = []

    def _make_server(self) -> QuietServer:
        raise NotImplementedError

    def _loops(self) -> list[Callable[[], None]]:
        """Work to run beside the server until `_stopping` is set."""
        return []

    def start(self) -> Self:
        if self._server is not None:
            raise RuntimeError(f"{self._name} already started")
        self._stopping.clear()
        server = self._server = self._make_server()
        serve = threading.Thread(
            target=server.serve_forever, args=(POLL_SECONDS,), name=self._name, daemon=True
        )
        self._threads = [
            serve,
            *(threading.Thread(target=loop, daemon=True) for loop in self._loops()),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        server = self._server
        if server is None:
            return
        self._stopping.set()
        server.shutdown()
        server.server_close()
        for thread in self._threads:
            thread.join()
        self._server = None
        self._threads = []

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _bound(self) -> tuple[str, int]:
        if self._server is None:
            raise RuntimeError(f"{self._name} not started")
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    @property
    def url(self) -> str:
        """The `endpoint_url` to give boto3, e.g. http://127.0.0.1:40123."""
        host, port = self._bound()
        return f"http://{host}:{port}"


ServiceT = TypeVar("ServiceT", bound=LoopbackService)


# Headers that describe one hop, not the message: a relay never forwards them.
HOP_HEADERS: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te"}
)


@dataclass(frozen=True)
class RelayedAnswer:
    """What the upstream answered, with its hop headers and length left out."""

    status: int
    reason: str
    headers: list[tuple[str, str]]
    payload: bytes


class RelayService(LoopbackService):
    """A loopback service in front of another server (`upstream`, moto's URL): what the
    strict proxy and the tests' fault proxy share, each judging or delaying in between."""

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(host, port)
        parsed = urllib.parse.urlsplit(upstream)
        if parsed.hostname is None or parsed.port is None:
            raise ValueError(f"upstream needs a host and a port: {upstream!r}")
        self._upstream = (parsed.hostname, parsed.port)
        self._lock = threading.Lock()

    def _ask_upstream(
        self, request: BaseHTTPRequestHandler, body: bytes, timeout: float
    ) -> RelayedAnswer:
        """The request as it came (its hop headers left out), asked of the upstream."""
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_HEADERS}
        upstream = http.client.HTTPConnection(*self._upstream, timeout=timeout)
        try:
            upstream.request(request.command, request.path, body=body, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
        finally:
            upstream.close()
        kept = [
            (key, value)
            for key, value in answer.getheaders()
            if key.lower() not in HOP_HEADERS and key.lower() != "content-length"
        ]
        return RelayedAnswer(answer.status, answer.reason, kept, payload)


def send_answer(
    request: BaseHTTPRequestHandler,
    status: int,
    headers: list[tuple[str, str]],
    payload: bytes,
    reason: str | None = None,
) -> None:
    """Answer with `payload` and its length; a caller that gave up waiting is no error."""
    try:
        request.send_response(status, reason)
        for key, value in headers:
            request.send_header(key, value)
        request.send_header("Content-Length", str(len(payload)))
        request.end_headers()
        if request.command != "HEAD":
            request.wfile.write(payload)
    except (BrokenPipeError, ConnectionResetError):
        return


class ServiceServer(QuietServer):
    """A QuietServer that hands its request handlers the service it serves."""

    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        service: LoopbackService,
    ) -> None:
        self.service = service
        super().__init__(address, handler)


class LoopbackHandler(BaseHTTPRequestHandler, Generic[ServiceT]):
    """What every loopback request handler repeats: no access log, the body read whole or
    drained, and an answer with its length. `service` is the LoopbackService served (the
    server must be a ServiceServer)."""

    # HTTP/1.0 closes each connection after its response, so no idle keep-alive
    # connection outlives stop() or goes stale in the client's pool.
    protocol_version = "HTTP/1.0"

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log http.server writes to stderr."""

    @property
    def service(self) -> ServiceT:
        server = self.server
        assert isinstance(server, ServiceServer)
        return cast(ServiceT, server.service)

    def content_length(self) -> int:
        value = self.headers.get("Content-Length") or "0"
        return int(value) if value.isdigit() else 0

    def read_body(self) -> bytes:
        """The whole body, framed by Content-Length or sent chunked."""
        body = self._read_framed(None)
        return b"" if body is None else body

    def read_body_within(self, limit: int) -> bytes | None:
        """The whole body, or None when it is over `limit`: then it is drained and discarded.

        Draining rather than hanging up lets the client finish sending and read the answer
        (a 413), instead of seeing a reset connection. A chunked body is read to its end too,
        so that on a kept-alive connection its chunks are never read as another request.
        """
        return self._read_framed(limit)

    def _read_framed(self, limit: int | None) -> bytes | None:
        coding = self.headers.get("Transfer-Encoding")
        if coding is not None:
            # Transfer-Encoding wins over any Content-Length (RFC 9112, section 6.3), and
            # the connection then closes after the answer, as that section asks.
            if self.headers.get("Content-Length") is not None:
                self.close_connection = True
            if coding.strip().lower() != "chunked":
                self._refuse_framing(501, f"transfer coding {coding[:40]!r} is not supported")
            try:
                return read_chunked(self.rfile, limit)
            except BodyFramingError as error:
                self._refuse_framing(400, f"malformed chunked body: {error}")
        remaining = self.content_length()
        if limit is None or remaining <= limit:
            return self.rfile.read(remaining)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _DRAIN_CHUNK))
            if not chunk:
                break
            remaining -= len(chunk)
        return None

    def _refuse_framing(self, status: int, reason: str) -> NoReturn:
        """Answer a body that cannot be read, then stop the request (the server stays quiet
        about BodyFramingError, and the connection closes)."""
        self.send_body(status, (reason + "\n").encode(), "text/plain; charset=utf-8")
        raise BodyFramingError(reason)

    def send_body(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Iterable[tuple[str, str]] = (),
    ) -> None:
        """Answer `status` with `body`, its type and length, then `headers`."""
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for name, value in headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(body)

    def send_json(
        self, status: int, document: Any, headers: Iterable[tuple[str, str]] = ()
    ) -> None:
        """Answer with `document` as JSON (what JSON cannot say, e.g. a datetime, as text)."""
        self.send_body(
            status, json.dumps(document, default=str).encode(), "application/json", headers
        )
