"""GET /events through the Lambda entry point, with SQS on moto's server."""

from __future__ import annotations

import json
import logging
import threading
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from chalicelib import runtime, telemetry
from chalicelib.responses import TRANSPARENT_GIF
from tests.integration.harness import (
    CHROMIUM_IMAGE_ACCEPT,
    CHROMIUM_USER_AGENT,
    Pipeline,
    proxy_event,
)

HIT = "event=purchase&endpoint_id=ep-1&evat_product=shoes&evmt_price=49.90&gtmcb=8812"


def received_bodies(pipeline: Pipeline) -> list[dict[str, object]]:
    messages = pipeline.sqs.receive_message(
        QueueUrl=pipeline.events_url, MaxNumberOfMessages=10
    ).get("Messages", [])
    return [json.loads(m["Body"]) for m in messages]


def test_accepted_hit_answers_the_gif_and_enqueues_one_normalized_message(
    pipeline: Pipeline,
) -> None:
    response = pipeline.hit(HIT)
    assert response.status == 200
    assert response.headers["Content-Type"] == "image/gif"
    assert response.body == TRANSPARENT_GIF
    assert "no-store" in response.headers["Cache-Control"]
    assert response.headers["Expires"] == "Thu, 01 Jan 1970 00:00:00 GMT"

    [message] = received_bodies(pipeline)
    assert message["version"] == 1
    assert message["event_type"] == "purchase"
    assert message["endpoint_id"] == "ep-1"
    assert message["attributes"] == {"product": "shoes"}
    assert message["metrics"] == {"price": 49.9}
    assert message["timestamp"] == message["received_at"]
    assert isinstance(message["event_id"], str)
    assert len(message["event_id"]) == 36


@pytest.mark.parametrize(
    "accept",
    [
        CHROMIUM_IMAGE_ACCEPT,
        "image/avif,image/webp,*/*",  # Firefox
        "image/webp,image/avif,image/jxl,image/heic,image/*;q=0.8,*/*;q=0.5",  # Safari
        "image/webp,image/*",  # no */*: Chalice alone would answer 400
        "text/html",
        None,  # no Accept at all: Chalice alone would answer 400
    ],
)
def test_every_accept_header_gets_the_gif_as_binary(pipeline: Pipeline, accept: str | None) -> None:
    from app import app

    headers = {"User-Agent": CHROMIUM_USER_AGENT}
    if accept is not None:
        headers["Accept"] = accept
    answer = app(proxy_event(HIT, headers), None)
    assert answer["statusCode"] == 200
    assert answer["isBase64Encoded"] is True
    assert answer["headers"]["Content-Type"] == "image/gif"


def test_refused_hit_names_the_rule_and_enqueues_nothing(pipeline: Pipeline) -> None:
    response = pipeline.hit("event=signup&endpoint_id=ep-1&usat_plan=gold")
    assert response.status == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert response.text == (
        "usat_plan: anonymous hits may not write this profile attribute "
        "(not in ALLOWED_USER_ATTRIBUTES)\n"
    )
    assert pipeline.queued() == 0


def test_allowlisted_profile_write_is_enqueued(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_USER_ATTRIBUTES", "plan")
    runtime.reset()
    assert pipeline.hit("event=signup&endpoint_id=ep-1&usat_plan=gold").status == 200
    [message] = received_bodies(pipeline)
    assert message["user_attributes"] == {"plan": ["gold"]}


def test_missing_queue_answers_503_never_200(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EVENTS_QUEUE", "no-such-queue")
    runtime.reset()
    response = pipeline.hit(HIT)
    assert response.status == 503
    assert response.text == "event not recorded: queue unavailable, try again\n"
    assert response.headers["Retry-After"] == "1"


def test_unreachable_sqs_answers_503_after_bounded_attempts(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", "http://127.0.0.1:9")
    monkeypatch.setenv("ENQUEUE_ATTEMPTS", "2")
    runtime.reset()
    assert pipeline.hit(HIT).status == 503


class FlakySqs:
    """A proxy in front of moto that answers the first N SendMessage calls with a 500."""

    def __init__(self, upstream: str, failures: int) -> None:
        self.failures = failures
        self.send_attempts = 0
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if "SendMessage" in self.headers.get("X-Amz-Target", ""):
                    proxy.send_attempts += 1
                    if proxy.send_attempts <= proxy.failures:
                        payload = b'{"__type":"InternalError","message":"injected"}'
                        self.send_response(500)
                        self.send_header("Content-Type", "application/x-amz-json-1.0")
                        self.send_header("Content-Length", str(len(payload)))
                        self.end_headers()
                        self.wfile.write(payload)
                        return
                request = urllib.request.Request(
                    upstream + self.path,
                    data=body,
                    headers={k: v for k, v in self.headers.items() if k.lower() != "host"},
                )
                with urllib.request.urlopen(request) as answer:
                    data = answer.read()
                    self.send_response(answer.status)
                    for name, value in answer.headers.items():
                        if name.lower() not in {"content-length", "transfer-encoding"}:
                            self.send_header(name, value)
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def log_message(self, format: str, *args: object) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def flaky_sqs(
    pipeline: Pipeline, moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakySqs]:
    proxy = FlakySqs(moto_url, failures=0)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)
    monkeypatch.setenv("ENQUEUE_ATTEMPTS", "3")
    runtime.reset()
    yield proxy
    proxy.server.shutdown()
    proxy.server.server_close()


def test_transient_sqs_errors_are_retried_within_the_hit(
    pipeline: Pipeline, flaky_sqs: FlakySqs
) -> None:
    flaky_sqs.failures = 2
    assert pipeline.hit(HIT).status == 200
    assert flaky_sqs.send_attempts == 3
    assert len(received_bodies(pipeline)) == 1


def test_sqs_failing_every_attempt_gets_503_and_nothing_is_enqueued(
    pipeline: Pipeline, flaky_sqs: FlakySqs
) -> None:
    flaky_sqs.failures = 3
    assert pipeline.hit(HIT).status == 503
    assert flaky_sqs.send_attempts == 3
    assert pipeline.queued() == 0


class RecordingHandler(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def log_records() -> Iterator[list[logging.LogRecord]]:
    handler = RecordingHandler()
    telemetry.logger.addHandler(handler)
    yield handler.records
    telemetry.logger.removeHandler(handler)  # type: ignore[attr-defined]


def test_metrics_and_logs_count_without_leaking_values(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str], log_records: list[logging.LogRecord]
) -> None:
    pipeline.hit(HIT + "&utm_source=newsletter")
    pipeline.hit("event=view&endpoint_id=secret-endpoint-42&evat_a=" + "x" * 201)
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    metric_docs = [line for line in lines if "_aws" in line]
    assert any(
        doc.get("HitsAccepted") == [1.0] or doc.get("HitsAccepted") == 1.0 for doc in metric_docs
    )
    assert any(doc.get("UnknownParameters") in (1.0, [1.0]) for doc in metric_docs)
    assert any(
        doc.get("reason") == "too_long" and "HitsRefusedByReason" in doc for doc in metric_docs
    )
    [refusal] = [r for r in log_records if r.getMessage() == "hit refused"]
    assert (refusal.reason, refusal.parameter) == ("too_long", "evat_a")  # type: ignore[attr-defined]
    everything = json.dumps(lines) + json.dumps([vars(r) for r in log_records], default=str)
    assert "secret-endpoint-42" not in everything
    assert "x" * 201 not in everything
