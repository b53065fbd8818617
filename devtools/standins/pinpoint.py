"""A local stand-in for Amazon Pinpoint's PutEvents, for tests and `make dev`.

moto does not implement PutEvents, so this small HTTP server speaks just enough of
Pinpoint's REST API (`POST /v1/apps/{application-id}/events`, rest-json) for a real
boto3 client pointed at `url` to send batches and parse both results and errors. It
enforces the per-request limits the real service enforces, can be told to fail or stall
on purpose, and records what it accepted. Standard library only.

Forgetting a visitor (`make ops ARGS="forget ..."`) adds DeleteEndpoint
(`DELETE /v1/apps/{application-id}/endpoints/{endpoint-id}`) and DeleteUserEndpoints
(`DELETE /v1/apps/{application-id}/users/{user-id}`), over the endpoints PutEvents created.

Run `.venv/bin/python -m devtools.standins.pinpoint --port 9100 --application app-1` to serve until
killed, printing one JSON line per accepted event on stdout.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from devtools.loopback import QuietServer, ServiceServer
from devtools.standins import base
from devtools.standins.base import (
    JsonObject,
    RequestError,
    RestJsonHandler,
    StandIn,
    json_object,
    print_record,
    serve,
)

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


class PinpointStandIn(StandIn[RecordedRequest, AcceptedEvent]):
    """Pinpoint PutEvents over HTTP on loopback, with programmable failures and recording."""

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
        super().__init__(host, port, on_accept)
        self._failures: deque[int] = deque()
        self._rejections: dict[str, _Rejection] = {}
        self._request_fault: RequestFault | None = None
        self._event_fault: EventFault | None = None
        # application id -> endpoint id -> its user id (None: no user), as PutEvents left it
        self._endpoints: dict[str, dict[str, str | None]] = {}

    _name = "pinpoint-standin"

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    # Programmable failures

    def fail_next_requests(self, status: int, count: int = 1) -> None:
        """Answer the next `count` requests with the request-level error for `status`.

        Calls queue up, so a test can script a sequence such as 429 then 500.
        """
        _error_type(status)
        with self._lock:
            self._failures.extend([status] * count)

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
    def accepted_events(self) -> list[AcceptedEvent]:
        """Every event answered 202, in order (a copy)."""
        return self._accepted_records()

    def reset(self) -> None:
        """Clear records and rules, so one server can serve many tests."""
        with self._lock:
            self.clear_rules()
            self._forget_records()

    # Request handling (called from server threads)

    def _respond(self, application_id: str, raw: bytes | None) -> _Reply:
        """Decide, record and build the answer to one PutEvents request.

        `raw` is None when the body exceeded MAX_REQUEST_BYTES and was discarded.
        """
        request_id = str(uuid.uuid4())
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            delay = self._next_delay()
            body: dict[str, Any] | None = None
            try:
                if raw is not None:
                    body = _parse_object(raw)
                if failure is None and body is not None and self._request_fault is not None:
                    failure = self._request_fault(body)
                if failure is not None:
                    raise RequestError(failure, f"Stand-in failure ({failure})")
                if raw is None:
                    raise RequestError(413, f"Request body exceeds {MAX_REQUEST_BYTES} bytes")
                if application_id not in self._applications:
                    raise RequestError(404, "Resource not found")
                if body is None:
                    raise RequestError(400, "Request body is not a JSON object")
                problems = model_problems(application_id, body) if self._validate_model else ""
                if problems:
                    raise RequestError(400, problems)
                results = self._process(application_id, body)
            except RequestError as error:
                self._record(RecordedRequest(application_id, body, error.status))
                return _Reply(
                    status=error.status,
                    body={"Message": error.message, "RequestID": request_id},
                    request_id=request_id,
                    error_type=_error_type(error.status),
                    delay=delay,
                )
            self._record(RecordedRequest(application_id, body, _ACCEPTED))
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
                    self._accept(record)
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

    # Forgetting a visitor: the endpoints PutEvents created, and their deletion. AWS: "To
    # delete all the data for a specific endpoint, you can use the Amazon Pinpoint API to
    # delete the endpoint" (DeleteEndpoint); DeleteUserEndpoints "deletes all the endpoints
    # that are associated with a specific user ID". Both answer 202 with what was deleted.
    # An unknown endpoint, or a user with no endpoint, is answered 404 (NotFoundException).

    def _accept(self, record: AcceptedEvent) -> None:
        super()._accept(record)
        user = record.endpoint.get("User", {}).get("UserId")
        endpoints = self._endpoints.setdefault(record.application_id, {})
        if user is not None or record.endpoint_id not in endpoints:
            endpoints[record.endpoint_id] = user

    def endpoints(self, application_id: str) -> dict[str, str | None]:
        """The project's endpoints now: endpoint id -> user id (a copy)."""
        with self._lock:
            return dict(self._endpoints.get(application_id, {}))

    def _delete(self, application_id: str, kind: str, name: str) -> _Reply:
        """Decide, record and build the answer to a DeleteEndpoint ("endpoints") or
        DeleteUserEndpoints ("users") request."""
        request_id = str(uuid.uuid4())
        operation = "DeleteEndpoint" if kind == "endpoints" else "DeleteUserEndpoints"
        member = "EndpointId" if kind == "endpoints" else "UserId"
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            delay = self._next_delay()
            request = {"ApplicationId": application_id, member: name}
            problems = base.model_problems("pinpoint", operation, request)
            endpoints = self._endpoints.get(application_id, {})
            if kind == "endpoints":
                deleted = [name] if name in endpoints else []
            else:
                deleted = [e for e, user in endpoints.items() if user == name]
            if failure is not None:
                status, message = failure, f"Stand-in failure ({failure})"
            elif problems:
                status, message = 400, problems
            elif application_id not in self._applications or not deleted:
                status, message = 404, "Resource not found"
            else:
                status, message = _ACCEPTED, ""
            self._record(RecordedRequest(application_id, request, status))
            if status != _ACCEPTED:
                reply = {"Message": message, "RequestID": request_id}
                return _Reply(status, reply, request_id, _error_type(status), delay)
            items = [
                {"ApplicationId": application_id, "Id": e, "User": {"UserId": endpoints[e]}}
                if endpoints[e]
                else {"ApplicationId": application_id, "Id": e}
                for e in deleted
            ]
            for endpoint_id in deleted:
                del endpoints[endpoint_id]
            body = items[0] if kind == "endpoints" else {"Item": items}
            return _Reply(_ACCEPTED, body, request_id, delay=delay)


def model_problems(application_id: str, body: JsonObject) -> str:
    """What botocore's own Pinpoint model says is wrong with a PutEvents request ("" if
    nothing)."""
    params = {"ApplicationId": application_id, "EventsRequest": body}
    return base.model_problems("pinpoint", "PutEvents", params)


def _batch_items(body: JsonObject) -> dict[str, tuple[JsonObject, JsonObject]]:
    """Check the EventsRequest's shape and the event quota; map endpoint id to (Endpoint, Events).

    A malformed shape or too many events fails the whole request, as in Pinpoint.
    """
    batch = body.get("BatchItem")
    if not isinstance(batch, dict):
        raise RequestError(400, "BatchItem is required and must be an object")
    items: dict[str, tuple[JsonObject, JsonObject]] = {}
    for endpoint_id, item in batch.items():
        endpoint = item.get("Endpoint", {}) if isinstance(item, dict) else None
        events = item.get("Events", {}) if isinstance(item, dict) else None
        if not isinstance(endpoint, dict) or not isinstance(events, dict):
            raise RequestError(400, f"BatchItem.{endpoint_id}: Endpoint and Events must be objects")
        if not all(isinstance(event, dict) for event in events.values()):
            raise RequestError(400, f"BatchItem.{endpoint_id}: every event must be an object")
        items[endpoint_id] = (endpoint, events)
    count = sum(len(events) for _, events in items.values())
    if count > MAX_EVENTS_PER_REQUEST:
        raise RequestError(
            400,
            f"Too many events: {count}; the maximum is {MAX_EVENTS_PER_REQUEST}",
        )
    return items


def _parse_object(raw: bytes) -> JsonObject | None:
    try:
        return json_object(raw)
    except ValueError:
        return None


class _Handler(RestJsonHandler[PinpointStandIn]):
    server_version = "PinpointStandIn"

    def do_POST(self) -> None:
        standin = self.service
        application_id = _application_id(self.path)
        raw = self.read_body_within(MAX_REQUEST_BYTES)
        if application_id is None:
            reply = _Reply(
                404,
                {"Message": f"No route for POST {self.path}"},
                str(uuid.uuid4()),
                "NotFoundException",
            )
        else:
            reply = standin._respond(application_id, raw)
        if not standin._wait_to_answer(reply.delay):
            return
        self._send(reply)

    def do_GET(self) -> None:
        self._not_allowed()

    def do_PUT(self) -> None:
        self._not_allowed()

    def do_DELETE(self) -> None:
        parts = urlsplit(self.path).path.split("/")
        # ["", "v1", "apps", "{application-id}", "endpoints" or "users", "{id}"]
        if (
            len(parts) == 6
            and parts[:3] == ["", "v1", "apps"]
            and parts[4] in ("endpoints", "users")
        ):
            self.read_body_within(MAX_REQUEST_BYTES)
            reply = self.service._delete(unquote(parts[3]), parts[4], unquote(parts[5]))
            if self.service._wait_to_answer(reply.delay):
                self._send(reply)
            return
        self._not_allowed()

    def _not_allowed(self) -> None:
        self.read_body_within(MAX_REQUEST_BYTES)
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
        self.send_answer(reply.status, reply.body, reply.request_id, reply.error_type)


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed, printing each accepted event as one JSON line on stdout."""
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.standins.pinpoint", description=__doc__
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

    standin = PinpointStandIn(args.application, args.host, args.port, on_accept=print_record)
    return serve(
        standin, lambda url: f"Pinpoint stand-in on {url} for {', '.join(args.application)}"
    )


if __name__ == "__main__":
    sys.exit(main())
