"""POST /events (beacons) through the Lambda entry point and `chalice local`, SQS on moto."""

from __future__ import annotations

import base64
import json
import urllib.error
import urllib.request
from typing import Any
from urllib.parse import unquote

import pytest

from chalicelib import runtime
from devtools.api_gateway import beacon_event
from tests.integration.harness import CHROMIUM_USER_AGENT, FlakySqs, Pipeline, ProxyResponse, signed
from tests.tokens import SECRET, live_token

PLAIN = "text/plain;charset=UTF-8"  # what sendBeacon sends with a string
VISITOR = {"User-Agent": CHROMIUM_USER_AGENT, "Content-Type": PLAIN}
TIMESTAMP = "2026-11-28T10:00:00Z"


def post(
    body: bytes | str | None, headers: dict[str, str] | None = None, base64_encoded: bool = True
) -> ProxyResponse:
    from app import app

    raw = body.encode() if isinstance(body, str) else body
    answer = app(beacon_event(raw, VISITOR if headers is None else headers, base64_encoded), None)
    payload = answer["body"]
    data = base64.b64decode(payload) if answer.get("isBase64Encoded") else payload.encode()
    return ProxyResponse(answer["statusCode"], answer["headers"], data)


def messages(pipeline: Pipeline) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    while batch := pipeline.sqs.receive_message(
        QueueUrl=pipeline.events_url, MaxNumberOfMessages=10
    ).get("Messages", []):
        found.extend(json.loads(message["Body"]) for message in batch)
    return found


@pytest.fixture(autouse=True)
def fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Timestamps in the lines are checked against now: let them be recent enough."""
    monkeypatch.setenv("MAX_EVENT_AGE_SECONDS", str(30 * 86_400))


@pytest.mark.parametrize("base64_encoded", [True, False], ids=["base64", "text"])
def test_each_line_is_one_message_exactly_as_the_get_writes_it(
    pipeline: Pipeline, base64_encoded: bool
) -> None:
    line = (
        f"event=purchase%26success&endpoint_id=ep%2310&event_id=e-1&timestamp={TIMESTAMP}"
        "&evat_product=shoes+%26+socks&evmt_price=49.90&gtmcb=1"
    )
    assert pipeline.hit(line).status == 200
    [from_get] = messages(pipeline)

    body = f"{line.replace('e-1', 'e-2')}\n\nevent=view&endpoint_id=ep-2\n"
    answer = post(body, base64_encoded=base64_encoded)
    assert (answer.status, answer.headers["Content-Type"]) == (200, "application/json")
    assert json.loads(answer.body) == {"accepted": 2, "refused": []}
    first, second = sorted(messages(pipeline), key=lambda m: m["endpoint_id"])
    assert first["event_type"] == "purchase&success"
    assert first["endpoint_id"] == "ep#10"
    assert first["attributes"] == {"product": "shoes & socks"}
    same = {key: value for key, value in first.items() if key not in ("event_id", "received_at")}
    assert same == {k: v for k, v in from_get.items() if k not in ("event_id", "received_at")}
    assert (second["event_type"], second["endpoint_id"]) == ("view", "ep-2")


def test_refused_lines_are_numbered_as_sent_and_the_rest_recorded(pipeline: Pipeline) -> None:
    body = "\r\n".join(
        [
            "event=view&endpoint_id=ep-1",
            "",
            "event=signup&endpoint_id=ep-1&usat_plan=gold",
            "event=view&endpoint_id=ep-1&evat_note=%FF",
            "evat_a=1",
            "event=view&endpoint_id=ep-1&evat_a=" + "x" * 9000,
            "event=view&endpoint_id=ep-2",
        ]
    )
    answer = post(body)
    assert answer.status == 200
    assert json.loads(answer.body) == {
        "accepted": 2,
        "refused": [
            {
                "line": 3,
                "reason": "usat_plan: anonymous hits may not write this profile attribute "
                "(not in ALLOWED_USER_ATTRIBUTES)",
            },
            {"line": 4, "reason": "evat_note: not valid UTF-8 (or U+FFFD)"},
            {"line": 5, "reason": "event: is required"},
            {"line": 6, "reason": "line: is 9035 bytes; a hit is at most 8192, as a GET's URL"},
        ],
    }
    assert sorted(m["endpoint_id"] for m in messages(pipeline)) == ["ep-1", "ep-2"]


@pytest.mark.parametrize(
    ("body", "headers", "status", "reason"),
    [
        (
            "event=view&endpoint_id=ep-1",
            {"User-Agent": CHROMIUM_USER_AGENT, "Content-Type": "application/json"},
            415,
            "Content-Type 'application/json' is not accepted; send text/plain, one hit per line",
        ),
        (
            "event=view&endpoint_id=ep-1",
            {"User-Agent": CHROMIUM_USER_AGENT},
            415,
            "Content-Type is missing; send text/plain, one hit per line",
        ),
        (
            "\n".join(["event=view&endpoint_id=ep-1"] * 501),
            VISITOR,
            413,
            "501 hits; at most 500 per request: split it",
        ),
        (
            "event=view&endpoint_id=ep-1&evat_a=" + "x" * 262_144,
            VISITOR,
            413,
            "body is 262179 bytes; at most 262144 (256 KiB): split it",
        ),
        (
            b"event=view&endpoint_id=ep-1\nevent=view&endpoint_id=\xff",
            VISITOR,
            400,
            "body is not valid UTF-8 (line 2, byte offset 51)",
        ),
        (None, VISITOR, 400, "body has no hits; send one query string per line"),
        ("\n\n", VISITOR, 400, "body has no hits; send one query string per line"),
        (
            "event=view&endpoint_id=ep-1",
            {"User-Agent": "curl/8.5.0", "Content-Type": PLAIN},
            400,
            "User-Agent: a known crawler or tool; not recorded (BOT_FILTER)",
        ),
    ],
    ids=["json", "no-type", "501-hits", "257-kib", "not-utf8", "empty", "blank", "bot"],
)
def test_a_bad_request_is_refused_whole_with_its_reason_and_nothing_enqueued(
    pipeline: Pipeline,
    body: str | bytes | None,
    headers: dict[str, str],
    status: int,
    reason: str,
) -> None:
    answer = post(body, headers)
    assert (answer.status, answer.text) == (status, reason + "\n")
    assert answer.headers["X-Pixel-Relay-Refusal"] == reason
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert "X-Pixel-Relay-Refusal" in answer.headers["Access-Control-Expose-Headers"]
    assert pipeline.queued() == 0


def test_each_line_carries_its_own_token(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    signed(monkeypatch, REQUIRE_SIGNED_HITS="true")
    own = live_token("ep-1", "u-1")
    body = "\n".join(
        [
            f"event=view&endpoint_id=ep-1&user_id=u-1&usat_plan=gold&token={own}",
            f"event=view&endpoint_id=victim&token={live_token('ep-1')}",
            "event=view&endpoint_id=ep-1",
        ]
    )
    answer = post(body)
    assert json.loads(answer.body) == {
        "accepted": 1,
        "refused": [
            {"line": 2, "reason": "token: was issued for another endpoint_id"},
            {"line": 3, "reason": "token: is required (REQUIRE_SIGNED_HITS)"},
        ],
    }
    [message] = messages(pipeline)
    assert (message["user_id"], message["user_attributes"]) == ("u-1", {"plan": ["gold"]})
    assert SECRET not in json.dumps(message)


def test_an_allowed_page_may_read_the_answer_another_may_not(
    pipeline: Pipeline, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ALLOWED_PAGE_ORIGINS", "https://shop.example.com")
    runtime.reset()
    shop = post("event=view&endpoint_id=ep-1", {**VISITOR, "Origin": "https://shop.example.com"})
    assert shop.status == 200
    assert shop.headers["Access-Control-Allow-Origin"] == "https://shop.example.com"
    assert shop.headers["Vary"] == "Origin"
    assert "Access-Control-Allow-Credentials" not in shop.headers

    other = post("event=view&endpoint_id=ep-1", {**VISITOR, "Origin": "https://evil.example"})
    assert (other.status, other.text) == (
        400,
        "Origin: page origin not allowed (ALLOWED_PAGE_ORIGINS)\n",
    )
    assert "Access-Control-Allow-Origin" not in other.headers
    assert pipeline.queued() == 1


def lines(count: int, refused_at: int | None = None) -> str:
    return "\n".join(
        "evat_only=1" if n == refused_at else f"event=view&endpoint_id=ep-1&event_id=e-{n}"
        for n in range(1, count + 1)
    )


def test_a_call_that_failed_after_its_retries_reports_lines_to_resend(
    pipeline: Pipeline, flaky_sqs: FlakySqs
) -> None:
    flaky_sqs.failures = 3  # every attempt of the first SendMessageBatch call
    answer = post(lines(16, refused_at=2))
    assert (answer.status, answer.headers["Retry-After"]) == (503, "1")
    report = json.loads(answer.body)
    assert report["accepted"] == 0
    assert report["refused"] == [{"line": 2, "reason": "event: is required"}]
    # The first call's ten lines may have landed (SQS answered 500); the next five were
    # never sent. Nothing was enqueued that the answer does not report.
    assert report["unavailable"] == [1, *range(3, 17)]
    assert report["may_have_landed"] == [1, *range(3, 12)]
    assert "same event_id" in report["message"]
    assert flaky_sqs.send_attempts == 3
    assert pipeline.queued() == 0


def test_sqs_errors_within_the_retries_still_record_every_line(
    pipeline: Pipeline, flaky_sqs: FlakySqs
) -> None:
    flaky_sqs.failures = 2
    answer = post(lines(25))
    assert (answer.status, json.loads(answer.body)) == (200, {"accepted": 25, "refused": []})
    assert flaky_sqs.send_attempts == 5  # 3 calls, the first one tried three times
    assert sorted(m["event_id"] for m in messages(pipeline)) == sorted(
        f"e-{n}" for n in range(1, 26)
    )


def test_metrics_count_beacons_and_their_lines(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    post(lines(4, refused_at=3))
    documents = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line]
    [totals] = [doc for doc in documents if "BeaconsReceived" in doc]
    assert totals["BeaconsReceived"] == [1.0]
    assert totals["BeaconLinesAccepted"] == [3.0]
    assert totals["BeaconLinesRefused"] == [1.0]
    assert totals["HitsAccepted"] == [3.0]
    assert any(
        doc.get("reason") == "missing_parameter" and doc.get("HitsRefusedByReason") == [1.0]
        for doc in documents
    )


# Refusals a browser can read: the GET's 400 carries its reason in a header too ----------


def test_a_get_refusal_carries_its_reason_in_a_header_readable_cross_origin(
    pipeline: Pipeline,
) -> None:
    answer = pipeline.hit("event=view&endpoint_id=ep-1&evat_%FF=1")
    assert answer.status == 400
    header = answer.headers["X-Pixel-Relay-Refusal"]
    assert header == "evat_%EF%BF%BD: name is not valid UTF-8 (or U+FFFD)"
    assert unquote(header) + "\n" == answer.text
    assert answer.headers["Access-Control-Allow-Origin"] == "*"
    assert answer.headers["Access-Control-Expose-Headers"] == ("X-Pixel-Relay-Refusal, Retry-After")
    accepted = pipeline.hit("event=view&endpoint_id=ep-1")
    assert "X-Pixel-Relay-Refusal" not in accepted.headers


# chalice local ---------------------------------------------------------------------------


def local(
    base: str, method: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(f"{base}/events", body, headers, method=method)
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def test_chalice_local_takes_a_beacon_and_answers_its_preflight(
    pipeline: Pipeline, chalice_local: str
) -> None:
    status, headers, body = local(
        chalice_local, "POST", b"event=view&endpoint_id=ep-1\nevat_x=1", VISITOR
    )
    assert status == 200
    assert json.loads(body) == {
        "accepted": 1,
        "refused": [{"line": 2, "reason": "event: is required"}],
    }
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert pipeline.queued() == 1

    status, headers, body = local(
        chalice_local, "POST", b"event=view", {**VISITOR, "Content-Type": "application/json"}
    )
    assert status == 415
    assert headers["X-Pixel-Relay-Refusal"] == body.decode().strip()

    status, headers, _ = local(
        chalice_local,
        "OPTIONS",
        None,
        {
            "Origin": "https://shop.example.com",
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type",
        },
    )
    assert status == 204
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert "POST" in headers["Access-Control-Allow-Methods"]
    assert headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert pipeline.queued() == 1


def test_gtms_text_for_an_unset_variable_is_refused_as_an_identifier_on_get_and_post(
    pipeline: Pipeline,
) -> None:
    """Issue 18, item 5: every identifier; a beacon's line is refused alone."""
    lines = [
        "event=view&endpoint_id=undefined",
        "event=null&endpoint_id=ep-1",
        "event=view&endpoint_id=ep-1&event_id=undefined",
        "event=view&endpoint_id=ep-1&session_id=null",
        "event=view&endpoint_id=ep-1",
    ]
    answer = post("\n".join(lines))
    report = json.loads(answer.body)
    assert report["accepted"] == 1
    assert [(r["line"], r["reason"].split(":")[0]) for r in report["refused"]] == [
        (1, "endpoint_id"),
        (2, "event"),
        (3, "event_id"),
        (4, "session_id"),
    ]
    assert report["refused"][0]["reason"].startswith(
        'endpoint_id: is "undefined", what GTM writes for an unset variable'
    )
    refused = pipeline.hit("event=view&endpoint_id=null")
    assert refused.status == 400
    assert refused.body.decode().startswith('endpoint_id: is "null", what GTM writes')
    assert [m["endpoint_id"] for m in messages(pipeline)] == ["ep-1"]
