"""A hit is never answered with an error once it is on the queue: a client that retries a
5xx would send it again. Two halves, GET and POST /events alike, through the Lambda entry
point (and `chalice local` for what only raw HTTP can carry):

- the request headers the answer depends on are refused with a 400 *before* anything is
  queued when malformed (a control character: a line break, NUL, ...), so Chalice never
  sees a header it would turn into a 500 (`Bad value for header`);
- every step after a successful SendMessage(Batch) is walked: a trace records each function
  of the app (chalicelib/, app.py) entered after SQS answered, and each bookkeeping step
  (metrics, logs, publishing) is then made to fail in turn, and stdout to break: the answer
  is still the GIF or the beacon's report, and the queue holds each hit once. The answer
  builders left (the beacon's report, the CORS headers) are pure functions of values fixed
  before the send; tests/unit/test_answers.py drives them with hostile values.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import pytest

from chalicelib import runtime
from chalicelib.responses import TRANSPARENT_GIF
from devtools.api_gateway import beacon_event
from tests.integration.harness import CHROMIUM_USER_AGENT, Pipeline, ProxyResponse, proxy_event

ROOT = Path(__file__).resolve().parents[2]
OURS = (str(ROOT / "chalicelib") + "/", str(ROOT / "app.py"))
HIT = "event=view&endpoint_id=ep-1"
SHOP = "https://shop.example.com"
BROWSER = {"User-Agent": CHROMIUM_USER_AGENT, "Origin": SHOP, "Referer": f"{SHOP}/cart"}
PLAIN = "text/plain;charset=UTF-8"
CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
INLINE = frozenset({"<listcomp>", "<genexpr>", "<dictcomp>", "<setcomp>"})
MALFORMED = "holds a control character (a line break, NUL, ...); not recorded"


def answer_of(proxy: dict[str, Any]) -> ProxyResponse:
    body = proxy["body"]
    raw = base64.b64decode(body) if proxy.get("isBase64Encoded") else body.encode()
    return ProxyResponse(proxy["statusCode"], proxy["headers"], raw)


def get(query: str, headers: dict[str, str]) -> ProxyResponse:
    from app import app

    return answer_of(app(proxy_event(query, headers), None))


def post(body: str, headers: dict[str, str]) -> ProxyResponse:
    from app import app

    return answer_of(app(beacon_event(body.encode(), {**headers, "Content-Type": PLAIN}), None))


def allow_the_shop(monkeypatch: pytest.MonkeyPatch, on: bool) -> None:
    if on:
        monkeypatch.setenv("ALLOWED_PAGE_ORIGINS", SHOP)
    else:
        monkeypatch.delenv("ALLOWED_PAGE_ORIGINS", raising=False)
    runtime.reset()


def assert_clean_headers(answer: ProxyResponse) -> None:
    for name, value in answer.headers.items():
        assert not CONTROL.search(f"{name}{value}"), (name, value)


# Malformed headers: refused before the send ------------------------------------------------


@pytest.mark.parametrize("header", ["Origin", "Referer", "User-Agent"])
def test_a_control_character_in_a_header_the_pixel_reads_is_refused_before_the_send(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, header: str
) -> None:
    """Before: an allowed Origin with a line break was queued, then answered 500."""
    for allowlist in (True, False):
        allow_the_shop(monkeypatch, allowlist)
        for control in ("\r\n", "\n", "\r", "\r\n X-Injected: 1", "\x00", "\x01", "\x1b", "\x7f"):
            headers = {**BROWSER, header: BROWSER[header] + control + "x"}
            for answer in (get(HIT, headers), post(HIT, headers)):
                assert (answer.status, answer.text) == (400, f"{header}: {MALFORMED}\n"), (
                    allowlist,
                    control,
                )
                assert_clean_headers(answer)
    assert pipeline.queued() == 0
    assert get(HIT, {**BROWSER, "User-Agent": "Mozilla/5.0\t(tab)"}).status == 200  # HTAB is fine
    assert pipeline.queued() == 1


def test_only_an_exact_allowed_origin_is_ever_echoed(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    allow_the_shop(monkeypatch, True)
    exact = get(HIT, BROWSER)
    assert exact.headers["Access-Control-Allow-Origin"] == SHOP
    for origin in (f"{SHOP}/", f"{SHOP}/cart?x=1", f"{SHOP}/\u00e9", f" {SHOP}\t"):
        answer = get(HIT, {**BROWSER, "Origin": origin})
        assert answer.status == 200, origin  # the page is allowed; the value not echoed
        assert answer.headers.get("Access-Control-Allow-Origin") in (None, SHOP), origin
        assert_clean_headers(answer)
    assert pipeline.queued() == 5


def raw_request(base: str, head: bytes, body: bytes = b"") -> bytes:
    host, port = base.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10) as connection:
        connection.sendall(head + body)
        answer = b""
        while chunk := connection.recv(65536):
            answer += chunk
    return answer


@pytest.mark.parametrize(
    "origin",
    [
        b"https://shop.example.com/\r\n folded",  # obs-fold: http.client keeps the line break
        b"https://shop.example.com\x00",
        b"https://shop.example.com\x1b[2J",
    ],
)
def test_chalice_local_refuses_them_too(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, chalice_local: str, origin: bytes
) -> None:
    allow_the_shop(monkeypatch, True)
    common = (
        b"Host: pixel\r\nUser-Agent: " + CHROMIUM_USER_AGENT.encode() + b"\r\nOrigin: " + origin
    )
    request_line = b"GET /events?" + HIT.encode() + b" HTTP/1.1\r\n"
    get_answer = raw_request(
        chalice_local, request_line + common + b"\r\nConnection: close\r\n\r\n"
    )
    body = HIT.encode()
    post_answer = raw_request(
        chalice_local,
        b"POST /events HTTP/1.1\r\n" + common + b"\r\nContent-Type: text/plain\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\nConnection: close\r\n\r\n",
        body,
    )
    for answer in (get_answer, post_answer):
        assert answer.startswith(b"HTTP/1.1 400 "), answer[:200]
        assert answer.endswith(f"Origin: {MALFORMED}\n".encode()), answer[-200:]
    assert pipeline.queued() == 0


# Every step after the send --------------------------------------------------------------------


class InjectedFaultError(RuntimeError):
    """When the walk makes a step fail."""


class AfterTheSend:
    """Notes the moment SQS answered a SendMessage(Batch) with success; from then on records
    every function of the app entered (`steps`), and raises in the one named `fail`."""

    def __init__(self, fail: str | None = None) -> None:
        self.fail = fail
        self.sent = False
        self.failed = False
        self.steps: list[str] = []

    def sqs_answered(self, http_response: Any, **_: Any) -> None:
        if http_response.status_code == 200:
            self.sent = True

    def trace(self, frame: FrameType, event: str, arg: object) -> None:
        code = frame.f_code
        if event != "call" or not self.sent or not code.co_filename.startswith(OURS):
            return
        if code.co_name in INLINE:
            return  # a comprehension: part of the step it is written in
        step = f"{Path(code.co_filename).stem}.{code.co_qualname}"
        self.steps.append(step)
        if step == self.fail:
            self.failed = True
            raise InjectedFaultError(step)  # the traced function raises it, at its first line


class BrokenStdout:
    """stdout once the reader went away (a closed pipe): every write fails."""

    def write(self, text: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")

    def flush(self) -> None:
        raise BrokenPipeError(32, "Broken pipe")


@contextmanager
def walking(watch: AfterTheSend, break_stdout: bool = False) -> Iterator[AfterTheSend]:
    client = runtime._pixel_sqs()  # the client the pixel sends with
    operations = ("SendMessage", "SendMessageBatch")
    for operation in operations:
        client.meta.events.register(f"after-call.sqs.{operation}", watch.sqs_answered)
    real_stdout = sys.stdout

    def trace(frame: FrameType, event: str, arg: object) -> None:
        if break_stdout and watch.sent and sys.stdout is real_stdout:
            sys.stdout = BrokenStdout()
        watch.trace(frame, event, arg)

    sys.settrace(trace)
    try:
        yield watch
    finally:
        sys.settrace(None)
        sys.stdout = real_stdout
        for operation in operations:
            client.meta.events.unregister(f"after-call.sqs.{operation}", watch.sqs_answered)


# What runs after the send. Bookkeeping is made to fail; the answer builders are pure
# functions of values fixed before the send (tests/unit/test_answers.py: hostile values).
BOOKKEEPING = {
    "telemetry.count",
    "telemetry.count_by_reason",
    "telemetry._count_at_once",
    "telemetry.publish",
    "beacon.BeaconService._account",
}
BUILDERS = {"responses.beacon_report", "responses.with_cors"}
BEACON = f"{HIT}&event_id=a\nevat_not_allowed=1\n{HIT}&event_id=b"  # two hits, one refused


def send(method: str) -> ProxyResponse:
    return get(HIT, BROWSER) if method == "GET" else post(BEACON, BROWSER)


def assert_recorded(method: str, answer: ProxyResponse) -> None:
    if method == "GET":
        assert (answer.status, answer.body) == (200, TRANSPARENT_GIF)
    else:
        assert answer.status == 200, answer.body
        report = json.loads(answer.body)
        assert (report["accepted"], [r["line"] for r in report["refused"]]) == (2, [2])
    assert answer.headers["Access-Control-Allow-Origin"] == SHOP
    assert "no-store" in answer.headers["Cache-Control"]


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_no_step_after_the_send_can_turn_the_answer_into_an_error(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    allow_the_shop(monkeypatch, True)
    per_request = 1 if method == "GET" else 2
    with walking(AfterTheSend()) as clean:
        assert_recorded(method, send(method))
    steps = set(clean.steps)
    assert clean.sent
    assert "telemetry.publish" in steps
    unclassified = steps - BOOKKEEPING - BUILDERS
    assert not unclassified, f"new steps after the send: classify them here {unclassified}"

    queued = per_request
    for step in sorted(steps & BOOKKEEPING):
        with walking(AfterTheSend(fail=step)) as faulty:
            answer = send(method)
        assert faulty.failed, step  # the step did run, and did fail
        assert_recorded(method, answer)
        queued += per_request
        assert pipeline.queued() == queued, step
    with walking(AfterTheSend(), break_stdout=True) as broken:
        answer = send(method)
    assert broken.sent
    assert_recorded(method, answer)
    assert pipeline.queued() == queued + per_request
