"""AWS answered in-process: the real boto3 clients run, only the network is replaced.

Handlers on botocore's `before-send` event answer SQS and Pinpoint from memory, so a
measured call still validates, serializes, signs and parses exactly as in Lambda. They are
registered on boto3's default session, which is where `chalicelib.runtime` gets its clients
(`boto3.client(...)`): nothing inside the app is patched.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, cast

import boto3
from botocore.awsrequest import AWSPreparedRequest, AWSResponse
from botocore.compat import HTTPHeaders
from botocore.hooks import HierarchicalEmitter

QUEUE_URL_PREFIX = "https://sqs.us-east-1.amazonaws.com/000000000000/"
Handler = Callable[..., None]


class _Body:
    """What AWSResponse reads a body from (urllib3's `stream`)."""

    def __init__(self, payload: bytes) -> None:
        self._payload = payload

    def stream(self, **_: Any) -> Iterator[bytes]:
        yield self._payload


def _response(request: AWSPreparedRequest, status: int, document: Any) -> AWSResponse:
    headers = HTTPHeaders()
    headers["x-amzn-RequestId"] = "in-process"
    headers["Content-Type"] = "application/json"
    return AWSResponse(request.url, status, headers, _Body(json.dumps(document).encode()))


def _body(request: AWSPreparedRequest) -> Any:
    raw = request.body
    if raw is None:
        return {}
    if isinstance(raw, bytes | bytearray):
        return json.loads(raw)
    if isinstance(raw, str):
        return json.loads(raw)
    return json.loads(raw.read())


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


@dataclass
class InProcessSqs:
    """SQS's JSON protocol for the calls the app makes; keeps every message body sent."""

    calls: Counter[str] = field(default_factory=Counter)
    bodies: list[str] = field(default_factory=list)
    keep_bodies: bool = True

    def __call__(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
        operation = event_name.rsplit(".", 1)[-1]
        self.calls[operation] += 1
        document = _body(request)
        if operation == "GetQueueUrl":
            return _response(request, 200, {"QueueUrl": QUEUE_URL_PREFIX + document["QueueName"]})
        if operation == "SendMessage":
            body = document["MessageBody"]
            if self.keep_bodies:
                self.bodies.append(body)
            return _response(
                request, 200, {"MessageId": str(uuid.uuid4()), "MD5OfMessageBody": _md5(body)}
            )
        if operation == "SendMessageBatch":
            entries = document["Entries"]
            successful = [
                {
                    "Id": entry["Id"],
                    "MessageId": str(uuid.uuid4()),
                    "MD5OfMessageBody": _md5(entry["MessageBody"]),
                }
                for entry in entries
            ]
            return _response(request, 200, {"Successful": successful, "Failed": []})
        if operation == "DeleteMessageBatch":
            deleted = [{"Id": entry["Id"]} for entry in document["Entries"]]
            return _response(request, 200, {"Successful": deleted, "Failed": []})
        raise NotImplementedError(f"in-process SQS does not answer {operation}")


@dataclass
class InProcessPinpoint:
    """PutEvents accepting every event (202), counting requests and events."""

    calls: int = 0
    events: int = 0

    def __call__(self, request: AWSPreparedRequest, event_name: str, **_: Any) -> AWSResponse:
        if not event_name.endswith(".PutEvents"):
            raise NotImplementedError(f"in-process Pinpoint does not answer {event_name}")
        self.calls += 1
        results: dict[str, Any] = {}
        for endpoint_id, item in _body(request).get("BatchItem", {}).items():
            events = item.get("Events", {})
            self.events += len(events)
            results[endpoint_id] = {
                "EndpointItemResponse": {"StatusCode": 202, "Message": "Accepted"},
                "EventsItemResponse": {
                    event_id: {"StatusCode": 202, "Message": "Accepted"} for event_id in events
                },
            }
        return _response(request, 202, {"Results": results})


@dataclass
class InProcessAws:
    sqs: InProcessSqs
    pinpoint: InProcessPinpoint


@contextlib.contextmanager
def aws_in_process(keep_bodies: bool = True, pinpoint: bool = True) -> Iterator[InProcessAws]:
    """A fresh default boto3 session whose SQS and (unless `pinpoint` is False) Pinpoint are
    answered from memory, and a fresh `chalicelib.runtime`, so the app builds its clients on
    it; both undone after."""
    answers = InProcessAws(InProcessSqs(keep_bodies=keep_bodies), InProcessPinpoint())
    with fresh_default_session() as session:
        # A before-send handler that returns a response replaces the HTTP exchange (the
        # stubs type handlers as returning None, which holds for most events).
        session.events.register("before-send.sqs", cast(Handler, answers.sqs))
        if pinpoint:
            session.events.register("before-send.pinpoint", cast(Handler, answers.pinpoint))
        yield answers


@contextlib.contextmanager
def fresh_default_session(
    session: boto3.session.Session | None = None,
) -> Iterator[boto3.session.Session]:
    """Install `session` (or a new one) as boto3's default, with the app's runtime reset."""
    from chalicelib import runtime  # here: a baseline process never loads the app

    previous = boto3.DEFAULT_SESSION
    current = session or boto3.session.Session()
    boto3.DEFAULT_SESSION = current
    runtime.reset()
    try:
        yield current
    finally:
        runtime.reset()
        boto3.DEFAULT_SESSION = previous


class FakeSqsClient:
    """An SQS client with no botocore in it at all: what the app's own code costs."""

    def __init__(self) -> None:
        self.sent = 0
        # The app watches each SendMessage attempt through botocore's event hooks; nothing
        # here emits them, as a send that never fails needs no retry.
        self.meta = SimpleNamespace(events=HierarchicalEmitter())

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # noqa: N803 (boto3's names)
        return {"QueueUrl": QUEUE_URL_PREFIX + QueueName}

    def send_message(self, QueueUrl: str, MessageBody: str) -> dict[str, str]:  # noqa: N803
        self.sent += 1
        return {"MessageId": "in-process", "MD5OfMessageBody": ""}


class _SessionWithFakeSqs(boto3.session.Session):
    """A default session that hands out FakeSqsClient for "sqs" and real clients otherwise."""

    def __init__(self, fake: FakeSqsClient) -> None:
        super().__init__()
        self._fake = fake

    def client(self, service_name: str, *args: Any, **kwargs: Any) -> Any:
        if service_name == "sqs":
            return self._fake
        # boto3-stubs list one overload per service name; any name is fine at run time.
        return super().client(service_name, *args, **kwargs)  # type: ignore[call-overload]


@contextlib.contextmanager
def sqs_client_faked() -> Iterator[FakeSqsClient]:
    """The app's SQS client replaced by FakeSqsClient (through boto3's default session)."""
    fake = FakeSqsClient()
    with fresh_default_session(_SessionWithFakeSqs(fake)):
        yield fake
