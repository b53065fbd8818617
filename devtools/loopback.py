"""The HTTP server every local stand-in, the fault proxy and the demo page share: its life,
and the request handler plumbing (quiet log, body reading, answers).

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Generic, Self, TypeVar, cast

# How often serve_forever checks for shutdown: stop() returns within this.
POLL_SECONDS: Final = 0.05
_DRAIN_CHUNK: Final = 64 * 1024


class QuietServer(ThreadingHTTPServer):
    """A threaded server on loopback that stays quiet when a client hangs up (a read
    timeout, a reload, a closed tab do exactly that) and never keeps the process alive."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], ConnectionError):
            return
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
        return self.rfile.read(self.content_length())

    def read_body_within(self, limit: int) -> bytes | None:
        """The whole body, or None when it is over `limit`: then it is drained and discarded.

        Draining rather than hanging up lets the client finish sending and read the answer
        (a 413), instead of seeing a reset connection.
        """
        remaining = self.content_length()
        if remaining <= limit:
            return self.rfile.read(remaining)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _DRAIN_CHUNK))
            if not chunk:
                break
            remaining -= len(chunk)
        return None

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
