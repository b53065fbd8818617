"""Test harness for the pipeline: the app invoked as Lambda invokes it, over local servers.

The pixel is called exactly as Lambda calls it (an API Gateway proxy event into the Chalice
app object, a proxy response out), and the consumer through the local event source mapping.
"""

from __future__ import annotations

import base64
import contextlib
import json
import threading
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from chalice.config import Config
from chalice.local import LocalDevServer
from werkzeug import Request, Response

from chalicelib import runtime
from devtools.api_gateway import pixel_event
from devtools.localstack.event_source import LocalEventSourceMapping
from devtools.standins.pinpoint import PinpointStandIn
from tests.tokens import SECRET

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

APPLICATION_ID = "0123456789abcdef0123456789abcdef"
MAX_RECEIVE_COUNT = 3
CHROMIUM_USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
CHROMIUM_IMAGE_ACCEPT = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"


@dataclass(frozen=True)
class ProxyResponse:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode()


def proxy_event(query: str, headers: dict[str, str] | None) -> dict[str, Any]:
    """An API Gateway (REST, Lambda proxy) event for GET /events."""
    return pixel_event(query, headers)


@dataclass
class Pipeline:
    """One isolated pipeline: its own queues, a fresh Pinpoint stand-in, the real app."""

    sqs: SQSClient
    events_url: str
    dead_letter_url: str
    pinpoint: PinpointStandIn

    def hit(self, query: str, accept: str | None = CHROMIUM_IMAGE_ACCEPT) -> ProxyResponse:
        from app import app

        headers = {"User-Agent": CHROMIUM_USER_AGENT}
        if accept is not None:
            headers["Accept"] = accept
        answer = app(proxy_event(query, headers), None)
        body = answer["body"]
        raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
        return ProxyResponse(answer["statusCode"], answer["headers"], raw)

    def consumer(
        self, report_batch_item_failures: bool = False, batch_size: int = 100
    ) -> LocalEventSourceMapping:
        from app import deliver

        return LocalEventSourceMapping(
            self.sqs,
            self.events_url,
            handler=lambda event: deliver(event, None),
            batch_size=batch_size,
            report_batch_item_failures=report_batch_item_failures,
        )

    def queued(self) -> int:
        attributes = self.sqs.get_queue_attributes(
            QueueUrl=self.events_url,
            AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
        )["Attributes"]
        return int(attributes["ApproximateNumberOfMessages"]) + int(
            attributes["ApproximateNumberOfMessagesNotVisible"]
        )

    def dead_letters(self) -> list[tuple[str, dict[str, str]]]:
        """Every dead-letter message: body and string attributes (received, then deleted)."""
        found: list[tuple[str, dict[str, str]]] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=self.dead_letter_url,
                MaxNumberOfMessages=10,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return found
            for message in messages:
                attributes = {
                    name: value.get("StringValue", "")
                    for name, value in message.get("MessageAttributes", {}).items()
                }
                found.append((message["Body"], attributes))
                self.sqs.delete_message(
                    QueueUrl=self.dead_letter_url, ReceiptHandle=message["ReceiptHandle"]
                )

    def send_raw(self, body: str) -> None:
        self.sqs.send_message(QueueUrl=self.events_url, MessageBody=body)

    def delivered(self) -> list[tuple[str, str]]:
        """(event type, event id) of every event the stand-in accepted, in order."""
        return [(e.event["EventType"], e.event_id) for e in self.pinpoint.accepted_events]


def configure(monkeypatch: pytest.MonkeyPatch, **settings: str) -> None:
    """Set the app's settings for this test and let it read them again."""
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    runtime.reset()


def signed(monkeypatch: pytest.MonkeyPatch, **more: str) -> None:
    """Signed hits on (tokens from tests.tokens.live_token), user attribute `plan` allowed
    to a signed hit, and any `more` settings."""
    configure(
        monkeypatch,
        TOKEN_HS256_KEYS=json.dumps({"k1": SECRET}),
        SIGNED_USER_ATTRIBUTES="plan",
        **more,
    )


@dataclass
class FlakySqs:
    """A proxy in front of moto that answers the first N SendMessage(Batch) calls with a 500
    (`flaky_sqs` in conftest.py puts it between the app and moto)."""

    upstream: str
    failures: int = 0
    send_attempts: int = 0

    def __call__(self, request: Request) -> Response:
        if "SendMessage" in request.headers.get("X-Amz-Target", ""):
            self.send_attempts += 1
            if self.send_attempts <= self.failures:
                payload = b'{"__type":"InternalError","message":"injected"}'
                return Response(payload, 500, content_type="application/x-amz-json-1.0")
        forwarded = urllib.request.Request(
            self.upstream + request.path,
            data=request.get_data(),
            headers={k: v for k, v in request.headers.items() if k.lower() != "host"},
        )
        with urllib.request.urlopen(forwarded) as answer:
            passed = [
                (name, value)
                for name, value in answer.headers.items()
                if name.lower() not in {"content-length", "transfer-encoding"}
            ]
            return Response(answer.read(), answer.status, passed)


def default_session() -> boto3.session.Session:
    """boto3's default session (made now if no client made it yet): where the app's clients
    come from, so a test can watch their calls through its events."""
    if boto3.DEFAULT_SESSION is None:
        boto3.setup_default_session()
    assert boto3.DEFAULT_SESSION is not None
    return boto3.DEFAULT_SESSION


def id_table(dynamodb: DynamoDBClient, prefix: str) -> str:
    """A new table as both deploy paths create the dedupe store's and the erasure list's:
    key `id` (string), on demand."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


@contextlib.contextmanager
def serving_chalice_local() -> Iterator[str]:
    """`chalice local`'s own server and request handler (what `chalice local` runs), in this
    process so that it sees the test's settings; its URL while the block runs."""
    from app import app

    server = LocalDevServer(app, Config(chalice_stage="dev"), "127.0.0.1", 0)
    thread = threading.Thread(target=server.server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server.server_address[1]}"
    server.shutdown()
    server.server.server_close()
    thread.join(timeout=5)
