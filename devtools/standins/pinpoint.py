"""A local stand-in for Amazon Pinpoint's PutEvents, for tests and `make dev`.

moto does not implement PutEvents, so this small HTTP server speaks just enough of
Pinpoint's REST API (`POST /v1/apps/{application-id}/events`, rest-json) for a real
boto3 client pointed at `url` to send batches and parse both results and errors. It
enforces the per-request limits the real service enforces, can be told to fail or stall
on purpose, and records what it accepted. Standard library only.

Run `python -m devtools.standins.pinpoint --port 9100 --application app-1` to serve until
killed, printing one JSON line per accepted event on stdout.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from urllib.parse import unquote, urlsplit

import botocore.session
from botocore.validate import ParamValidator

from devtools.loopback import LoopbackService, QuietServer
from devtools.process import stop_on_signals

# Pinpoint's quotas for one PutEvents request.
MAX_EVENTS_PER_REQUEST: Final = 100
MAX_REQUEST_BYTES: Final = 4 * 1024 * 1024

# The request-level errors PutEvents declares in botocore's model, by HTTP status.
ERROR_TYPES: Final[dict[int, str]] = {
    400: "BadRequestException",
    403: "ForbiddenException",
    404: "NotFoundException",
    405: "MethodNotAllowedException",
    413: "PayloadTooLargeException",
    429: "TooManyRequestsException",
    500: "InternalServerErrorException",
}

_ACCEPTED: Final = 202

# Planned faults (see PinpointStandIn.plan_faults).
RequestFault = Callable[[dict[str, Any]], int | None]
EventFault = Callable[[str, dict[str, Any]], tuple[int, str] | None]
_DRAIN_CHUNK: Final = 64 * 1024
# How often serve_forever checks for shutdown: bounds how long stop() takes.


@dataclass(frozen=True)
class AcceptedEvent:
    """One event answered 202, with the endpoint data sent alongside it."""

    endpoint_id: str
    event_id: str
    event: dict[str, Any]
    endpoint: dict[str, Any]
    application_id: str


@dataclass(frozen=True)
class RecordedRequest:
    """One PutEvents request as received, and the HTTP status it was answered with.

    `body` is None when it was not a JSON object or was too large to read.
    """

    application_id: str
    body: dict[str, Any] | None
    status: int


@dataclass(frozen=True)
class _Reply:
    status: int
    body: dict[str, Any]
    request_id: str
    error_type: str | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class _Rejection:
    status: int
    message: str


class _RequestError(Exception):
    """A request-level failure, answered as a rest-json error."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _error_type(status: int) -> str:
    try:
        return ERROR_TYPES[status]
    except KeyError:
        supported = ", ".join(str(s) for s in ERROR_TYPES)
        raise ValueError(
            f"PutEvents declares no error for HTTP {status}; use one of {supported}"
        ) from None


def _application_id(path: str) -> str | None:
    parts = urlsplit(path).path.split("/")
    # ["", "v1", "apps", "{application-id}", "events"]
    if len(parts) != 5 or parts[:3] != ["", "v1", "apps"] or parts[4] != "events" or not parts[3]:
        return None
    return unquote(parts[3])


def _missing_fields(event: dict[str, Any]) -> list[str]:
    return [
        name
        for name in ("EventType", "Timestamp")
        if not isinstance(event.get(name), str) or not event[name]
    ]


class PinpointStandIn(LoopbackService):
    """Pinpoint PutEvents over HTTP on loopback, with programmable failures and recording.

    All rules and records are guarded by one lock: the server answers each request on its
    own thread, and tests read records and set rules from theirs.
    """

    def __init__(
        self,
        applications: Iterable[str] = ("app-1",),
        host: str = "127.0.0.1",
        port: int = 0,
        on_accept: Callable[[AcceptedEvent], None] | None = None,
        validate_model: bool = False,
    ) -> None:
        """`on_accept` is called for each accepted event, in order, with the lock held.
        `validate_model` refuses (400) any request botocore's Pinpoint model refuses, as a
        dry run must: it is off by default so tests can send per-event invalid events."""
        self._applications = frozenset(applications)
        self._validate_model = validate_model
        super().__init__(host, port)
        self._on_accept = on_accept
        self._lock = threading.RLock()
        self._failures: deque[int] = deque()
        self._delays: deque[float] = deque()
        self._rejections: dict[str, _Rejection] = {}
        self._request_fault: RequestFault | None = None
        self._event_fault: EventFault | None = None
        self._requests: list[RecordedRequest] = []
        self._accepted: list[AcceptedEvent] = []

    _name = "pinpoint-standin"

    def _make_server(self) -> QuietServer:
        return _Server(self._address, _Handler, self)

    # Programmable failures

    def fail_next_requests(self, status: int, count: int = 1) -> None:
        """Answer the next `count` requests with the request-level error for `status`.

        Calls queue up, so a test can script a sequence such as 429 then 500.
        """
        _error_type(status)
        with self._lock:
            self._failures.extend([status] * count)

    def delay_next_requests(self, seconds: float, count: int = 1) -> None:
        """Sleep `seconds` before answering each of the next `count` requests.

        The request is processed (and recorded) first, as a slow real service would
        have done, so a client that times out and retries sends the events twice.
        """
        with self._lock:
            self._delays.extend([seconds] * count)

    def reject_events(
        self,
        event_type: str,
        status: int = 400,
        message: str = "Rejected by stand-in rule",
    ) -> None:
        """Answer every event of `event_type` with a per-event `status`; others are accepted."""
        if not 400 <= status <= 599:
            raise ValueError(f"a rejection needs an error status, not {status}")
        with self._lock:
            self._rejections[event_type] = _Rejection(status, message)

    def plan_faults(
        self, request: RequestFault | None = None, event: EventFault | None = None
    ) -> None:
        """Faults decided by content rather than by order, for soaks whose batches form by
        timing: `request(body)` may answer a status that fails the whole request (a
        request-level error); `event(endpoint_id, event)` may answer one event's
        (status, message). Both run with the lock held; None clears them."""
        with self._lock:
            self._request_fault = request
            self._event_fault = event

    def clear_rules(self) -> None:
        """Forget queued failures, delays, event rejections and planned faults."""
        with self._lock:
            self._failures.clear()
            self._delays.clear()
            self._rejections.clear()
            self._request_fault = self._event_fault = None

    # Recording

    @property
    def requests(self) -> list[RecordedRequest]:
        """Every PutEvents request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    @property
    def accepted_events(self) -> list[AcceptedEvent]:
        """Every event answered 202, in order (a copy)."""
        with self._lock:
            return list(self._accepted)

    def reset(self) -> None:
        """Clear records and rules, so one server can serve many tests."""
        with self._lock:
            self.clear_rules()
            self._requests.clear()
            self._accepted.clear()

    # Request handling (called from server threads)

    def _respond(self, application_id: str, raw: bytes | None) -> _Reply:
        """Decide, record and build the answer to one PutEvents request.

        `raw` is None when the body exceeded MAX_REQUEST_BYTES and was discarded.
        """
        request_id = str(uuid.uuid4())
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            delay = self._delays.popleft() if self._delays else 0.0
            body: dict[str, Any] | None = None
            try:
                if raw is not None:
                    body = _parse_object(raw)
                if failure is None and body is not None and self._request_fault is not None:
                    failure = self._request_fault(body)
                if failure is not None:
                    raise _RequestError(failure, f"Stand-in failure ({failure})")
                if raw is None:
                    raise _RequestError(413, f"Request body exceeds {MAX_REQUEST_BYTES} bytes")
                if application_id not in self._applications:
                    raise _RequestError(404, "Resource not found")
                if body is None:
                    raise _RequestError(400, "Request body is not a JSON object")
                problems = model_problems(application_id, body) if self._validate_model else ""
                if problems:
                    raise _RequestError(400, problems)
                results = self._process(application_id, body)
            except _RequestError as error:
                self._requests.append(RecordedRequest(application_id, body, error.status))
                return _Reply(
                    status=error.status,
                    body={"Message": error.message, "RequestID": request_id},
                    request_id=request_id,
                    error_type=_error_type(error.status),
                    delay=delay,
                )
            self._requests.append(RecordedRequest(application_id, body, _ACCEPTED))
            return _Reply(_ACCEPTED, {"Results": results}, request_id, delay=delay)

    def _process(self, application_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer each event of a valid EventsRequest; the lock is held."""
        results: dict[str, Any] = {}
        for endpoint_id, (endpoint, events) in _batch_items(body).items():
            answers: dict[str, Any] = {}
            for event_id, event in events.items():
                planned = self._event_fault(endpoint_id, event) if self._event_fault else None
                status, message = planned or self._judge(event)
                answers[event_id] = {"StatusCode": status, "Message": message}
                if status == _ACCEPTED:
                    record = AcceptedEvent(endpoint_id, event_id, event, endpoint, application_id)
                    self._accepted.append(record)
                    if self._on_accept is not None:
                        self._on_accept(record)
            results[endpoint_id] = {
                "EndpointItemResponse": {"StatusCode": _ACCEPTED, "Message": "Accepted"},
                "EventsItemResponse": answers,
            }
        return results

    def _judge(self, event: dict[str, Any]) -> tuple[int, str]:
        missing = _missing_fields(event)
        if missing:
            return 400, f"Event is missing required field(s): {', '.join(missing)}"
        rejection = self._rejections.get(event["EventType"])
        if rejection is not None:
            return rejection.status, rejection.message
        return _ACCEPTED, "Accepted"


_JsonObject = dict[str, Any]


@functools.cache
def _put_events_input() -> Any:
    return (
        botocore.session.get_session()
        .get_service_model("pinpoint")
        .operation_model("PutEvents")
        .input_shape
    )


def model_problems(application_id: str, body: _JsonObject) -> str:
    """What botocore's own Pinpoint model says is wrong with a PutEvents request ("" if
    nothing): the same check a real client makes before sending, so a request that a
    client with validation turned off could send is refused here as Pinpoint would."""
    report = ParamValidator().validate(
        {"ApplicationId": application_id, "EventsRequest": body}, _put_events_input()
    )
    return report.generate_report() if report.has_errors() else ""


def _batch_items(body: _JsonObject) -> dict[str, tuple[_JsonObject, _JsonObject]]:
    """Check the EventsRequest's shape and the event quota; map endpoint id to (Endpoint, Events).

    A malformed shape or too many events fails the whole request, as in Pinpoint.
    """
    batch = body.get("BatchItem")
    if not isinstance(batch, dict):
        raise _RequestError(400, "BatchItem is required and must be an object")
    items: dict[str, tuple[_JsonObject, _JsonObject]] = {}
    for endpoint_id, item in batch.items():
        endpoint = item.get("Endpoint", {}) if isinstance(item, dict) else None
        events = item.get("Events", {}) if isinstance(item, dict) else None
        if not isinstance(endpoint, dict) or not isinstance(events, dict):
            raise _RequestError(
                400, f"BatchItem.{endpoint_id}: Endpoint and Events must be objects"
            )
        if not all(isinstance(event, dict) for event in events.values()):
            raise _RequestError(400, f"BatchItem.{endpoint_id}: every event must be an object")
        items[endpoint_id] = (endpoint, events)
    count = sum(len(events) for _, events in items.values())
    if count > MAX_EVENTS_PER_REQUEST:
        raise _RequestError(
            400,
            f"Too many events: {count}; the maximum is {MAX_EVENTS_PER_REQUEST}",
        )
    return items


def _parse_object(raw: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(raw)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


class _Server(QuietServer):
    def __init__(
        self,
        address: tuple[str, int],
        handler: type[BaseHTTPRequestHandler],
        standin: PinpointStandIn,
    ) -> None:
        self.standin = standin
        super().__init__(address, handler)


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.0 closes each connection after its response, so no idle keep-alive
    # connection outlives stop() or goes stale in the client's pool.
    protocol_version = "HTTP/1.0"
    server_version = "PinpointStandIn"

    def do_POST(self) -> None:
        standin = self._standin()
        application_id = _application_id(self.path)
        raw = self._read_body()
        if application_id is None:
            reply = _Reply(
                404,
                {"Message": f"No route for POST {self.path}"},
                str(uuid.uuid4()),
                "NotFoundException",
            )
        else:
            reply = standin._respond(application_id, raw)
        if reply.delay > 0 and standin._stopping.wait(reply.delay):
            return  # stopping: drop the connection unanswered
        self._send(reply)

    def do_GET(self) -> None:
        self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        self._not_allowed()

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request access log http.server writes to stderr."""

    def _standin(self) -> PinpointStandIn:
        assert isinstance(self.server, _Server)
        return self.server.standin

    def _read_body(self) -> bytes | None:
        """Read the whole body; over the quota it is drained and discarded (None).

        Draining rather than hanging up lets the client finish sending and read the 413,
        instead of seeing a reset connection.
        """
        remaining = int(self.headers.get("Content-Length") or 0)
        if remaining <= MAX_REQUEST_BYTES:
            return self.rfile.read(remaining)
        while remaining > 0:
            chunk = self.rfile.read(min(remaining, _DRAIN_CHUNK))
            if not chunk:
                break
            remaining -= len(chunk)
        return None

    def _not_allowed(self) -> None:
        self._read_body()
        request_id = str(uuid.uuid4())
        message = f"Method {self.command} not allowed"
        self._send(
            _Reply(
                405,
                {"Message": message, "RequestID": request_id},
                request_id,
                "MethodNotAllowedException",
            )
        )

    def _send(self, reply: _Reply) -> None:
        payload = json.dumps(reply.body).encode()
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-amzn-RequestId", reply.request_id)
        if reply.error_type is not None:
            self.send_header("x-amzn-ErrorType", reply.error_type)
        self.end_headers()
        self.wfile.write(payload)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed, printing each accepted event as one JSON line on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.standins.pinpoint", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9100)
    parser.add_argument(
        "--application",
        action="append",
        required=True,
        help="a known application (project) id; repeat for more",
    )
    args = parser.parse_args(argv)

    def print_event(record: AcceptedEvent) -> None:
        # on_accept runs under the stand-in's lock, so lines never interleave.
        print(json.dumps(dataclasses.asdict(record), sort_keys=True), flush=True)

    with (
        stop_on_signals() as done,
        PinpointStandIn(args.application, args.host, args.port, on_accept=print_event) as standin,
    ):
        print(
            f"Pinpoint stand-in on {standin.url} for {', '.join(args.application)}",
            file=sys.stderr,
            flush=True,
        )
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
