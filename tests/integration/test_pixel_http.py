"""GET /events through the Lambda entry point, with SQS on moto's server."""

from __future__ import annotations

import base64
import io
import json
import logging
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

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


@dataclass
class FlakySqs:
    """A proxy in front of moto that answers the first N SendMessage calls with a 500."""

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


@pytest.fixture
def flaky_sqs(
    pipeline: Pipeline, moto_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakySqs]:
    proxy = FlakySqs(moto_url)
    httpserver.expect_request("/", method="POST").respond_with_handler(proxy)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("ENQUEUE_ATTEMPTS", "3")
    runtime.reset()
    yield proxy
    httpserver.check()


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
    assert (refusal.reason, refusal.parameter_kind) == ("too_long", "evat_")  # type: ignore[attr-defined]
    everything = json.dumps(lines) + json.dumps([vars(r) for r in log_records], default=str)
    assert "secret-endpoint-42" not in everything
    assert "x" * 201 not in everything


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    """The pixel's log lines exactly as Powertools writes them to CloudWatch."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(telemetry.logger.registered_formatter)
    telemetry.logger.addHandler(handler)
    yield stream
    telemetry.logger.removeHandler(handler)  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("query", "kind", "identifier"),
    [
        ("usat_alice@example.com=gold", "usat_", "alice@example.com"),
        ("evat_" + "k" * 60 + "-bob@example.com=1", "evat_", "bob@example.com"),
        ("carol@example.com=1&evat_x=%FF", "evat_", None),
        ("dave@example.com=%FF", "unknown", "dave@example.com"),
        ("Opt_Out=erin@example.com", "delivery_field", "erin@example.com"),
        ("timestamp=yesterday", "timestamp", None),
    ],
)
def test_refusal_log_lines_name_the_rule_and_kind_never_the_parameter(
    pipeline: Pipeline, json_log: io.StringIO, query: str, kind: str, identifier: str | None
) -> None:
    """docs/threat-model.md: logs carry no identifiers, and a parameter's name can be one."""
    assert pipeline.hit("event=view&endpoint_id=ep-1&" + query).status == 400
    [line] = [json.loads(text) for text in json_log.getvalue().splitlines()]
    assert line["message"] == "hit refused"
    assert line["parameter_kind"] == kind
    assert "parameter" not in line
    if identifier is not None:
        assert identifier not in json_log.getvalue()


# Bytes are what they claim: the same answers through `chalice local` and through Lambda -------

# Each is refused by name; %C0%AF is an overlong "/", %ED%A0%80 a UTF-8-encoded lone
# surrogate (the README's promise), %EF%BF%BD an encoded U+FFFD (indistinguishable).
NOT_UTF8 = [
    ("evat_note=%FF", "evat_note: not valid UTF-8 (or U+FFFD)"),
    ("evat_note=ok%ED%A0%80", "evat_note: not valid UTF-8 (or U+FFFD)"),
    ("evat_note=%C0%AF", "evat_note: not valid UTF-8 (or U+FFFD)"),
    ("evat_note=%EF%BF%BD", "evat_note: not valid UTF-8 (or U+FFFD)"),
    ("evat_note=%E2%82", "evat_note: not valid UTF-8 (or U+FFFD)"),
    ("event_id=%F4%90%80%80", "event_id: not valid UTF-8 (or U+FFFD)"),
    ("evat_%FF=1", "evat_\ufffd: name is not valid UTF-8 (or U+FFFD)"),
    ("x%ED%A0%80=1", "x\ufffd\ufffd\ufffd: name is not valid UTF-8 (or U+FFFD)"),
    ("gtmcb=%FF", "gtmcb: not valid UTF-8 (or U+FFFD)"),
]
VALID = "event=view&endpoint_id=ep-1&evat_note=%E2%82%AC%F0%9F%98%80%C3%A9"


def local_get(base: str, query: str) -> tuple[int, str]:
    request = urllib.request.Request(
        f"{base}/events?{query}", headers={"User-Agent": CHROMIUM_USER_AGENT}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, answer.read().decode("utf-8", "backslashreplace")
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode("utf-8")


@pytest.mark.parametrize(("query", "reason"), NOT_UTF8)
def test_bytes_that_are_not_utf8_are_refused_through_chalice_local(
    pipeline: Pipeline, chalice_local: str, query: str, reason: str
) -> None:
    status, body = local_get(chalice_local, "event=view&endpoint_id=ep-1&" + query)
    assert (status, body) == (400, reason + "\n")
    assert local_get(chalice_local, VALID)[0] == 200
    assert pipeline.queued() == 1


@pytest.mark.parametrize(("query", "reason"), NOT_UTF8)
def test_bytes_that_are_not_utf8_are_refused_through_the_lambda_entry_point(
    pipeline: Pipeline, query: str, reason: str
) -> None:
    answer = pipeline.hit("event=view&endpoint_id=ep-1&" + query)
    assert (answer.status, answer.text) == (400, reason + "\n")
    assert pipeline.hit(VALID).status == 200
    [message] = received_bodies(pipeline)
    assert message["attributes"] == {"note": "\u20ac\U0001f600\u00e9"}


@pytest.mark.parametrize(
    ("parameters", "reason"),
    [
        ({"evat_note": ["ok\ud800"]}, "evat_note: not valid UTF-8 (or U+FFFD)"),
        ({"evat_\udfff": ["1"]}, "evat_\\udfff: name is not valid UTF-8 (or U+FFFD)"),
        ({"unknown\ud800": ["1"]}, "unknown\\ud800: name is not valid UTF-8 (or U+FFFD)"),
    ],
)
def test_lone_surrogates_in_the_event_json_are_refused_too(
    pipeline: Pipeline, parameters: dict[str, list[str]], reason: str
) -> None:
    """Should a gateway hand them on as JSON escapes (`"\\ud800"`) rather than U+FFFD: the
    README's promise holds for names and values alike."""
    from app import app

    event = proxy_event("", {"User-Agent": CHROMIUM_USER_AGENT})
    event["multiValueQueryStringParameters"] = {
        "event": ["view"],
        "endpoint_id": ["ep-1"],
        **parameters,
    }
    event = json.loads(json.dumps(event))  # as Lambda's runtime decodes it
    answer = app(event, None)
    assert answer["statusCode"] == 400
    body = base64.b64decode(answer["body"]) if answer.get("isBase64Encoded") else answer["body"]
    assert body == (reason + "\n").encode()
    assert pipeline.queued() == 0
