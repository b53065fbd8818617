"""The `make dev` demo page: send GTM-style hits from a browser and watch them arrive.

One small HTTP server (standard library only) serves the page in `demo/` beside it and relays
the page's image requests to the pixel. An `<img>`, and GTM, learn only whether the image
loaded; the relay records what the pixel actually answered (status, content type, the reason
of a refusal) in an in-memory journal the page polls, next to the events the destination has
accepted so far. Development tooling only: never packaged into Lambda.

Routes:

- `GET /` the page; `GET /static/<file>` its scripts and styles.
- `GET /left` where the page's "leave the page" link lands: which of the two hits fired as the
  page unloaded (the Image tag's, through the relay; a beacon's, `POST /events` straight to
  the pixel, cross-origin as from a real site) reached the destination. It reads the journal
  and the deliveries below; the beacon never passes this server.
- `GET /events?<query>` the relay: the same raw query to `{pixel_url}/events`, the browser's
  `Accept` and `User-Agent` unchanged, the pixel's status, type, cache headers and body back
  byte for byte; 502 with a plain-text reason when the pixel cannot be reached.
- `GET /api/config` what the page shows about this stack: the pixel's URL and the destination
  whose deliveries it shows (for customer-profiles, each card shows the profile object and
  the event triggers it fired: "campaign X would reach profile Y", or why not).
- `GET /api/hits?after=<seq>` journal entries after `seq`, oldest first.
- `GET /api/delivered?after=<n>` `delivered()[n:]`, each with `index` and `observed_at`.
- `POST /api/outage` `{"calls": n}` (1..20): the destination fails its next n calls. 204.
- `GET /api/container.json` a GTM container made for this page (`?gtm=GTM-XXXXXXX` mode): the
  kit's container (devtools/ops/gtm.py) with this page's origin as the API URL, so every hit
  passes the relay; the template tag active and sending image requests (the relay takes
  GETs), its permissions narrowed to this origin; the trigger on the page's own events
  (DEMO_EVENTS); the stage's allowed profile attributes.
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import uuid
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from http import HTTPStatus
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qs, urlsplit

from chalicelib.hits import HitPolicy
from devtools.loopback import LoopbackHandler, LoopbackService, QuietServer, ServiceServer
from devtools.ops import gtm

DEMO_DIR: Final = Path(__file__).resolve().parent / "demo"
INDEX_FILE: Final = "index.html"
LEFT_FILE: Final = "left.html"
# The pixel may try SQS ENQUEUE_ATTEMPTS (up to 5) times, 1 s connect + 2 s read each.
PIXEL_TIMEOUT_SECONDS: Final = 20.0
# Request headers an image request carries that the pixel's answer may depend on.
FORWARDED_REQUEST_HEADERS: Final = ("Accept", "User-Agent")
# Response headers returned as the pixel sent them (Content-Length is recomputed).
RETURNED_RESPONSE_HEADERS: Final = (
    "Content-Type",
    "Cache-Control",
    "Pragma",
    "Expires",
    "Retry-After",
    "X-Content-Type-Options",
)
MAX_OUTAGE_CALLS: Final = 20
JOURNAL_SIZE: Final = 2000
MAX_REASON_CHARACTERS: Final = 2000
MAX_API_BODY_BYTES: Final = 1024
# How often delivered() is read, so each event's arrival time is known to within this.
DELIVERY_WATCH_SECONDS: Final = 0.1
_STATIC_NAME: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]*\.[A-Za-z0-9]+$")
STATIC_TYPES: Final[dict[str, str]] = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
}
_IMAGE_TYPE: Final = re.compile(r"^\s*image/", re.IGNORECASE)
# The events the page pushes: its form's default, its "what can go wrong" buttons and its
# "leave the page" link (demo.js). The real-GTM container's trigger fires on these.
DEMO_EVENTS: Final = ("purchase", "review", "signup", "checkout")
# Every answer of the page's own (not the relayed pixel's): never cached, never sniffed.
_OWN_HEADERS: Final = (("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"))


def utc_timestamp() -> str:
    """Now, ISO 8601 in UTC with milliseconds and a Z (as the pixel writes timestamps)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class JournalEntry:
    """One relayed hit and what the pixel answered. `reason` is the body of a non-image answer."""

    seq: int
    id: str
    query: str
    status: int
    content_type: str | None
    reason: str | None
    at: str


@dataclass(frozen=True)
class PixelAnswer:
    status: int
    headers: list[tuple[str, str]]
    body: bytes

    @property
    def content_type(self) -> str | None:
        for name, value in self.headers:
            if name.lower() == "content-type":
                return value
        return None


class PixelUnreachableError(Exception):
    """When the pixel cannot be asked, or does not answer, within the timeout."""


class DemoServer(LoopbackService):
    """The demo page and the relay in front of the pixel, on a daemon thread.

    `pixel_url` is the pixel's base (`http://127.0.0.1:8000`; the route is `/events`).
    `delivered()` returns the events the destination accepted so far, in delivery order, each
    a mapping with `endpoint_id`, `event_id`, `event` and `endpoint`. `simulate_outage(n)`
    makes the destination fail its next n calls. Both are called from server threads.
    `destination` names where delivered() comes from (the page labels and shows it so).
    """

    def __init__(
        self,
        pixel_url: str,
        delivered: Callable[[], Sequence[Mapping[str, Any]]],
        simulate_outage: Callable[[int], None],
        host: str = "127.0.0.1",
        port: int = 0,
        destination: str = "pinpoint",
        hit_policy: HitPolicy | None = None,
    ) -> None:
        parts = urlsplit(pixel_url)
        if parts.scheme not in {"http", "https"} or not parts.hostname:
            raise ValueError(f"pixel_url must be an http(s) URL, not {pixel_url!r}")
        if parts.query or parts.fragment:
            raise ValueError(f"pixel_url is a base URL without query or fragment: {pixel_url!r}")
        self.pixel_url = pixel_url.rstrip("/")
        self._pixel = parts
        self._delivered = delivered
        self._simulate_outage = simulate_outage
        self.destination = destination
        self.hit_policy = hit_policy or HitPolicy()
        super().__init__(host, port)
        self._lock = threading.Lock()
        self._journal: deque[JournalEntry] = deque(maxlen=JOURNAL_SIZE)
        self._next_seq = 1
        self._observed_at: list[str] = []

    _name = "demo-server"

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    def _loops(self) -> list[Callable[[], None]]:
        return [self._watch_deliveries]

    @property
    def url(self) -> str:
        """The page's address, e.g. http://127.0.0.1:40123/."""
        host, port = self._bound()
        shown = "127.0.0.1" if host in {"0.0.0.0", ""} else host
        return f"http://{shown}:{port}/"

    # The journal

    def hits(self, after: int = 0) -> list[JournalEntry]:
        """Journal entries with a sequence number above `after`, oldest first."""
        with self._lock:
            return [entry for entry in self._journal if entry.seq > after]

    def _record(self, query: str, status: int, content_type: str | None, body: bytes) -> None:
        reason = None
        if content_type is None or not _IMAGE_TYPE.match(content_type):
            reason = body.decode("utf-8", "replace").strip()[:MAX_REASON_CHARACTERS]
        cache_buster = parse_qs(query, keep_blank_values=True).get("gtmcb", [""])[0]
        with self._lock:
            entry = JournalEntry(
                seq=self._next_seq,
                id=cache_buster or uuid.uuid4().hex,
                query=query,
                status=status,
                content_type=content_type,
                reason=reason,
                at=utc_timestamp(),
            )
            self._next_seq += 1
            self._journal.append(entry)

    # The relay

    def relay(self, query: str, headers: Mapping[str, str]) -> PixelAnswer:
        """Ask the pixel, record its answer in the journal, and return it (502 if unreachable)."""
        try:
            answer = self._ask_pixel(query, headers)
        except PixelUnreachableError as error:
            reason = f"pixel unreachable at {self.pixel_url}/events: {error}\n".encode()
            answer = PixelAnswer(
                HTTPStatus.BAD_GATEWAY,
                [("Content-Type", "text/plain; charset=utf-8"), ("Cache-Control", "no-store")],
                reason,
            )
        self._record(query, answer.status, answer.content_type, answer.body)
        return answer

    def _ask_pixel(self, query: str, headers: Mapping[str, str]) -> PixelAnswer:
        parts = self._pixel
        connection_type = (
            http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        )
        path = parts.path.rstrip("/") + "/events" + (f"?{query}" if query else "")
        assert parts.hostname is not None  # checked in __init__
        connection = connection_type(parts.hostname, parts.port, timeout=PIXEL_TIMEOUT_SECONDS)
        try:
            # No Accept-Encoding of our own: the pixel sees what the browser sent, nothing more.
            connection.putrequest("GET", path, skip_accept_encoding=True)
            for name in FORWARDED_REQUEST_HEADERS:
                value = headers.get(name)
                if value is not None:
                    connection.putheader(name, value)
            connection.endheaders()
            response = connection.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise PixelUnreachableError(str(error) or type(error).__name__) from error
        finally:
            connection.close()
        kept = {name.lower() for name in RETURNED_RESPONSE_HEADERS}
        returned = [(name, value) for name, value in response.getheaders() if name.lower() in kept]
        return PixelAnswer(response.status, returned, body)

    # Deliveries

    def delivered_since(self, after: int) -> list[dict[str, Any]]:
        """`delivered()[after:]`, each with its `index` and when this server first saw it."""
        records = self._observe_deliveries()
        with self._lock:
            observed = list(self._observed_at)
        return [
            {**dict(record), "index": index, "observed_at": observed[index]}
            for index, record in enumerate(records)
            if index >= after
        ]

    def _observe_deliveries(self) -> Sequence[Mapping[str, Any]]:
        records = self._delivered()
        with self._lock:
            now = utc_timestamp()
            while len(self._observed_at) < len(records):
                self._observed_at.append(now)
        return records

    def _watch_deliveries(self) -> None:
        """Read delivered() often, so each event's arrival time is close to the real one."""
        while not self._stopping.wait(DELIVERY_WATCH_SECONDS):
            try:
                self._observe_deliveries()
            except Exception:
                continue  # /api/delivered reports the error; keep watching

    # Outage

    def outage(self, calls: object) -> None:
        """simulate_outage(calls) for a whole number of calls in 1..MAX_OUTAGE_CALLS."""
        if isinstance(calls, bool) or not isinstance(calls, int):
            raise ValueError("calls must be a whole number")
        if not 1 <= calls <= MAX_OUTAGE_CALLS:
            raise ValueError(f"calls must be between 1 and {MAX_OUTAGE_CALLS}")
        self._simulate_outage(calls)

    # The real-GTM container

    def container(self) -> dict[str, Any]:
        """The GTM container for this page (see the module's docstring)."""
        document = gtm.container(self.url, self.hit_policy, DEMO_EVENTS, transport="image")
        document["containerVersion"]["container"]["name"] = "pixel-relay demo"
        return document

    # Static files

    @staticmethod
    def static_file(name: str) -> tuple[bytes, str] | None:
        """A file directly in the demo folder with a known type; None for anything else."""
        if not _STATIC_NAME.match(name):
            return None
        content_type = STATIC_TYPES.get(Path(name).suffix.lower())
        path = DEMO_DIR / name
        if content_type is None or path.resolve().parent != DEMO_DIR or not path.is_file():
            return None
        return path.read_bytes(), content_type


class _Handler(LoopbackHandler[DemoServer]):
    server_version = "PixelRelayDemo"

    # Routing

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?")
        if path == "/events":
            self._relay(query)
        elif path in {"/", "/index.html"}:
            self._static(INDEX_FILE)
        elif path == "/left":
            self._static(LEFT_FILE)
        elif path.startswith("/static/"):
            self._static(path.removeprefix("/static/"))
        elif path == "/api/config":
            self._json(
                {
                    "pixel_url": self.service.pixel_url,
                    "relay": "/events",
                    "destination": self.service.destination,
                }
            )
        elif path == "/api/container.json":
            body = gtm.render(self.service.container()).encode()
            self.send_body(
                HTTPStatus.OK,
                body,
                "application/json",
                (
                    *_OWN_HEADERS,
                    (
                        "Content-Disposition",
                        'attachment; filename="pixel-relay-demo-container.json"',
                    ),
                ),
            )
        elif path == "/api/hits":
            after = self._counter(query)
            if after is not None:
                self._json([asdict(entry) for entry in self.service.hits(after)])
        elif path == "/api/delivered":
            after = self._counter(query)
            if after is not None:
                self._delivered(after)
        else:
            self._text(HTTPStatus.NOT_FOUND, f"no route for GET {path}")

    def do_POST(self) -> None:
        path = self.path.partition("?")[0]
        if path == "/api/outage":
            self._outage()
        else:
            self._drain()
            self._text(HTTPStatus.NOT_FOUND, f"no route for POST {path}")

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def do_PATCH(self) -> None:
        self._not_allowed()

    # Routes

    def _relay(self, query: str) -> None:
        headers = {
            name: value
            for name in FORWARDED_REQUEST_HEADERS
            if (value := self.headers.get(name)) is not None
        }
        answer = self.service.relay(query, headers)
        self.send_response(answer.status)
        for name, value in answer.headers:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer.body)))
        self.end_headers()
        self.wfile.write(answer.body)

    def _static(self, name: str) -> None:
        found = self.service.static_file(name)
        if found is None:
            self._text(HTTPStatus.NOT_FOUND, "no such file")
            return
        body, content_type = found
        self._send(HTTPStatus.OK, body, content_type)

    def _delivered(self, after: int) -> None:
        try:
            records = self.service.delivered_since(after)
        except Exception as error:  # the callback's failure, whatever it is, is reported
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, f"delivered() failed: {error!r}")
            return
        self._json(records)

    def _outage(self) -> None:
        if self.headers.get_content_type() != "application/json":
            # Also keeps other sites' plain form posts out: JSON needs a CORS preflight.
            self._drain()
            self._text(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, 'send JSON: {"calls": 3}')
            return
        raw = self.read_body_within(MAX_API_BODY_BYTES)
        if raw is None:
            self._text(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "body too large")
            return
        try:
            document = json.loads(raw)
        except ValueError:
            self._text(HTTPStatus.BAD_REQUEST, 'body is not JSON: send {"calls": 3}')
            return
        calls = document.get("calls") if isinstance(document, dict) else None
        try:
            self.service.outage(calls)
        except ValueError as error:
            self._text(HTTPStatus.BAD_REQUEST, str(error))
            return
        except Exception as error:  # the callback's failure, whatever it is, is reported
            self._text(HTTPStatus.INTERNAL_SERVER_ERROR, f"simulate_outage failed: {error!r}")
            return
        self.send_response(HTTPStatus.NO_CONTENT)
        self.send_header("Cache-Control", "no-store")
        self.end_headers()

    def _not_allowed(self) -> None:
        self._drain()
        self._text(HTTPStatus.METHOD_NOT_ALLOWED, f"method {self.command} not allowed")

    # Helpers

    def _counter(self, query: str) -> int | None:
        """`after` from the query (default 0); answers 400 itself and returns None if bad."""
        values = parse_qs(query, keep_blank_values=True).get("after", ["0"])
        value = values[-1]
        if len(values) > 1 or not value.isdigit() or len(value) > 18:
            self._text(HTTPStatus.BAD_REQUEST, "after must be a non-negative whole number")
            return None
        return int(value)

    def _drain(self) -> None:
        self.read_body_within(MAX_API_BODY_BYTES)

    def _json(self, value: Any) -> None:
        self.send_json(HTTPStatus.OK, value, _OWN_HEADERS)

    def _text(self, status: HTTPStatus, message: str) -> None:
        self._send(status, (message + "\n").encode(), "text/plain; charset=utf-8")

    def _send(self, status: HTTPStatus, body: bytes, content_type: str) -> None:
        self.send_body(status, body, content_type, _OWN_HEADERS)
