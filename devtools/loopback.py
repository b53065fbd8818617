"""The HTTP server every local stand-in and the demo page share.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Self

# How often serve_forever checks for shutdown: stop() returns within this.
POLL_SECONDS: Final = 0.05


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
