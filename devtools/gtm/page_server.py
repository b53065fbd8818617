"""A page on loopback whose GTM runtime is the strict emulator (devtools/gtm/page.mjs), and a
counting relay in front of the pixel, for browser tests and a look by hand.

Routes:

- `GET /gtm/<file>` this folder's modules (emulator.mjs, page.mjs, browser-globals.json), to
  any origin (CORS), so another page (the demo's `?gtm=` mode) can import them too;
- `GET /<name>` a page given to the server (`pages`), e.g. the test page and a page to leave to;
- `/pixel/<path>` forwarded to the pixel (`pixel_url`), method, headers and body as sent, the
  answer as given; every request is recorded (`requests()`), so a test counts what left the
  browser without trusting the browser to report beacons sent as a page unloads.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import http.client
import threading
from dataclasses import dataclass
from http import HTTPStatus
from pathlib import Path
from typing import Final
from urllib.parse import urlsplit

from devtools.loopback import LoopbackHandler, LoopbackService, QuietServer, ServiceServer

HERE: Final = Path(__file__).resolve().parent
MODULE_TYPES: Final = {
    ".mjs": "text/javascript; charset=utf-8",
    ".json": "application/json",
}
FORWARDED_HEADERS: Final = (
    "Accept",
    "Content-Type",
    "User-Agent",
    "Origin",
    "Referer",
    "If-None-Match",
)
MAX_BODY: Final = 1024 * 1024


@dataclass
class RelayedRequest:
    method: str
    path: str  # as the pixel saw it, query included
    body: bytes
    status: int | None = None  # the pixel's answer, once it came
    answer: bytes = b""


class GtmPageServer(LoopbackService):
    """Pages, the emulator's modules and a counting relay to the pixel (see module doc)."""

    _name = "gtm-page-server"

    def __init__(
        self, pixel_url: str, pages: dict[str, tuple[bytes, str]], host: str = "127.0.0.1"
    ) -> None:
        self.pixel_url = pixel_url.rstrip("/")
        self.pages = pages
        self._relayed: list[RelayedRequest] = []
        self._lock = threading.Lock()
        super().__init__(host, 0)

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    @property
    def url(self) -> str:
        host, port = self._bound()
        return f"http://{host}:{port}/"

    @property
    def relay_url(self) -> str:
        """The pixel's base as pages here see it (its /events is `relay_url + "events"`)."""
        return self.url + "pixel/"

    def requests(self) -> list[RelayedRequest]:
        with self._lock:
            return list(self._relayed)

    def forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        record = RelayedRequest(method, path, body)
        with self._lock:
            self._relayed.append(record)
        parts = urlsplit(self.pixel_url)
        assert parts.hostname is not None
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        try:
            connection.request(method, parts.path + path, body=body or None, headers=headers)
            answer = connection.getresponse()
            content = answer.read()
        finally:
            connection.close()
        with self._lock:
            record.status, record.answer = answer.status, content
        return answer.status, answer.getheaders(), content


class _Handler(LoopbackHandler[GtmPageServer]):
    server_version = "PixelRelayGtmPages"

    def do_GET(self) -> None:
        self._answer()

    def do_POST(self) -> None:
        self._answer()

    def do_OPTIONS(self) -> None:
        self._answer()

    def _answer(self) -> None:
        path = self.path
        if path.startswith("/pixel/"):
            self._relay(path.removeprefix("/pixel"))
            return
        self.read_body_within(MAX_BODY)
        if self.command != "GET":
            self.send_body(HTTPStatus.METHOD_NOT_ALLOWED, b"", "text/plain")
            return
        name = path.partition("?")[0]
        if name.startswith("/gtm/"):
            self._module(name.removeprefix("/gtm/"))
        elif name in self.service.pages:
            body, content_type = self.service.pages[name]
            self.send_body(HTTPStatus.OK, body, content_type, [("Cache-Control", "no-store")])
        else:
            self.send_body(HTTPStatus.NOT_FOUND, b"no such page\n", "text/plain")

    def _module(self, name: str) -> None:
        path = HERE / name
        content_type = MODULE_TYPES.get(path.suffix)
        if "/" in name or content_type is None or not path.is_file():
            self.send_body(HTTPStatus.NOT_FOUND, b"no such module\n", "text/plain")
            return
        headers = [("Access-Control-Allow-Origin", "*"), ("Cache-Control", "no-store")]
        self.send_body(HTTPStatus.OK, path.read_bytes(), content_type, headers)

    def _relay(self, path: str) -> None:
        body = self.read_body_within(MAX_BODY) or b""
        headers = {name: value for name in FORWARDED_HEADERS if (value := self.headers.get(name))}
        status, answer_headers, answer = self.service.forward(self.command, path, headers, body)
        self.send_response(status)
        for name, value in answer_headers:
            if name.lower() not in {"content-length", "transfer-encoding", "connection", "date"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)
