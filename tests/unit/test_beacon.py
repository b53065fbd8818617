"""A beacon's body read into lines, its batch send, and the refusal header, without I/O."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from botocore.exceptions import EndpointConnectionError

from chalicelib.beacon import (
    MAX_BODY_BYTES,
    MAX_HITS,
    MAX_LINE_BYTES,
    BeaconRefusedError,
    Line,
    line_parameters,
    read_lines,
)
from chalicelib.hits import HitRefusedError
from chalicelib.queue import EventQueue
from chalicelib.responses import refusal_header, refused
from tests.factories import make_event

PLAIN = "text/plain;charset=UTF-8"  # what sendBeacon and fetch send with a string body


def test_lines_are_numbered_as_sent_blank_ones_counted_and_skipped() -> None:
    body = b"event=a&endpoint_id=1\n\n   \r\nevent=b&endpoint_id=2\r\nevent=c&endpoint_id=3\n"
    assert read_lines(body, PLAIN) == [
        Line(1, "event=a&endpoint_id=1"),
        Line(4, "event=b&endpoint_id=2"),
        Line(5, "event=c&endpoint_id=3"),
    ]


def test_a_leading_byte_order_mark_is_not_part_of_the_first_hit() -> None:
    assert read_lines("\ufeffevent=a".encode(), PLAIN) == [Line(1, "event=a")]


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", 'TEXT/PLAIN; charset="utf-8"', "text/plain; x=y"],
)
def test_text_plain_with_or_without_a_utf8_charset_is_read(content_type: str) -> None:
    assert read_lines(b"event=a", content_type) == [Line(1, "event=a")]


@pytest.mark.parametrize(
    ("content_type", "reason"),
    [
        (None, "Content-Type is missing; send text/plain, one hit per line"),
        (
            "application/json",
            "Content-Type 'application/json' is not accepted; send text/plain, one hit per line",
        ),
        (
            "application/x-www-form-urlencoded",
            "Content-Type 'application/x-www-form-urlencoded' is not accepted; "
            "send text/plain, one hit per line",
        ),
        ("text/plain; charset=iso-8859-1", "charset must be utf-8 (the body is read as UTF-8)"),
    ],
)
def test_another_content_type_is_refused_with_415(content_type: str | None, reason: str) -> None:
    with pytest.raises(BeaconRefusedError) as refusal:
        read_lines(b"event=a&endpoint_id=1", content_type)
    assert (refusal.value.status, str(refusal.value)) == (415, reason)


def test_a_body_over_256_kib_is_refused_whole_before_decoding() -> None:
    body = b"\xff" * (MAX_BODY_BYTES + 1)  # not UTF-8 either: the size is what is reported
    with pytest.raises(BeaconRefusedError) as refusal:
        read_lines(body, PLAIN)
    assert refusal.value.status == 413
    assert (
        str(refusal.value)
        == f"body is {MAX_BODY_BYTES + 1} bytes; at most 262144 (256 KiB): split it"
    )
    assert read_lines(b"e" * MAX_BODY_BYTES, PLAIN) == [Line(1, "e" * MAX_BODY_BYTES)]


def test_more_than_500_hits_is_refused_whole_blank_lines_not_counted() -> None:
    hit = "event=a&endpoint_id=1"
    assert len(read_lines("\n\n".join([hit] * MAX_HITS).encode(), PLAIN)) == 500
    with pytest.raises(BeaconRefusedError) as refusal:
        read_lines("\n".join([hit] * (MAX_HITS + 1)).encode(), PLAIN)
    assert (refusal.value.status, str(refusal.value)) == (
        413,
        "501 hits; at most 500 per request: split it",
    )


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "body has no hits; send one query string per line"),
        (b"\n \r\n\n", "body has no hits; send one query string per line"),
        (b"event=a\nevent=caf\xe9", "body is not valid UTF-8 (line 2, byte offset 17)"),
    ],
)
def test_an_empty_or_undecodable_body_is_refused_with_400(body: bytes, reason: str) -> None:
    with pytest.raises(BeaconRefusedError) as refusal:
        read_lines(body, PLAIN)
    assert (refusal.value.status, str(refusal.value)) == (400, reason)


def test_a_line_is_decoded_as_a_gets_query_string() -> None:
    line = Line(3, "event=purchase%26success&endpoint_id=ep%2310&evat_q=a+b&usat_x=1&usat_x=2")
    assert line_parameters(line) == {
        "event": ["purchase&success"],
        "endpoint_id": ["ep#10"],
        "evat_q": ["a b"],
        "usat_x": ["1", "2"],
    }
    # Not UTF-8 behind the escape: U+FFFD, which the gate refuses by name (encoding.py).
    assert line_parameters(Line(1, "evat_note=%FF")) == {"evat_note": ["\ufffd"]}


def test_a_line_longer_than_a_get_can_carry_is_refused_alone() -> None:
    assert line_parameters(Line(1, "evat_a=" + "x" * (MAX_LINE_BYTES - 7)))
    with pytest.raises(HitRefusedError) as refusal:
        line_parameters(Line(1, "evat_a=" + "é" * MAX_LINE_BYTES))
    assert str(refusal.value) == "line: is 16391 bytes; a hit is at most 8192, as a GET's URL"


# The refusal header --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("reason", "header"),
    [
        ("token: has expired", "token: has expired"),
        ("evat_\ufffd: name is not valid UTF-8", "evat_%EF%BF%BD: name is not valid UTF-8"),
        ("evat_x%y: 100%", "evat_x%25y: 100%25"),
        ("evat_a\r\nSet-Cookie: x", "evat_a%0D%0ASet-Cookie: x"),
        ("unknown\udfff: name", "unknown\\udfff: name"),
    ],
)
def test_the_refusal_header_is_ascii_and_decodes_back_to_the_body(reason: str, header: str) -> None:
    assert refusal_header(reason) == header
    assert header.isascii()
    assert header.isprintable()
    response = refused(reason)
    assert response.headers["X-Pixel-Relay-Refusal"] == header
    body = response.body
    assert isinstance(body, bytes)
    assert unquote(header) == body.decode("utf-8").removesuffix("\n")


# The batch send --------------------------------------------------------------------------


class Events:
    def register(self, *args: Any, **kwargs: Any) -> None:
        pass


class Meta:
    events = Events()


class FakeSqs:
    """Fails entries whose event id starts with "sender" (for good) or "server" (the first
    time); `broken_calls` whole calls fail without a connection."""

    meta = Meta()

    def __init__(self, broken_calls: tuple[int, ...] = ()) -> None:
        self.calls: list[list[str]] = []
        self.broken_calls = broken_calls
        self.seen: set[str] = set()

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # noqa: N803
        return {"QueueUrl": f"http://sqs/{QueueName}"}

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        ids = [json.loads(entry["MessageBody"])["event_id"] for entry in Entries]
        self.calls.append(ids)
        if len(self.calls) in self.broken_calls:
            raise EndpointConnectionError(endpoint_url="http://sqs")
        failed = []
        for entry, event_id in zip(Entries, ids, strict=True):
            if event_id.startswith("sender"):
                failed.append({"Id": entry["Id"], "SenderFault": True, "Code": "X"})
            elif event_id.startswith("server") and event_id not in self.seen:
                self.seen.add(event_id)
                failed.append({"Id": entry["Id"], "SenderFault": False, "Code": "InternalError"})
        return {"Failed": failed, "Successful": []}


def queue(sqs: FakeSqs) -> EventQueue:
    return EventQueue(sqs, "events")  # type: ignore[arg-type]


def test_a_batch_goes_ten_to_a_call_each_body_as_the_get_writes_it() -> None:
    sqs = FakeSqs()
    events = [make_event(event_id=f"e-{i}") for i in range(25)]
    assert queue(sqs).send_batch(events).failed == ()
    assert [len(call) for call in sqs.calls] == [10, 10, 5]
    assert [event_id for call in sqs.calls for event_id in call] == [f"e-{i}" for i in range(25)]


def test_entries_sqs_failed_on_its_side_are_sent_once_more_its_refusals_are_reported() -> None:
    sqs = FakeSqs()
    events = [make_event(event_id=name) for name in ("e-0", "server-1", "sender-2", "e-3")]
    result = queue(sqs).send_batch(events)
    assert (result.failed, result.may_have_landed) == ((2,), ())
    assert sqs.calls == [["e-0", "server-1", "sender-2", "e-3"], ["server-1"]]


def test_after_a_call_fails_whole_the_rest_are_not_tried_and_all_reported() -> None:
    sqs = FakeSqs(broken_calls=(2,))
    events = [make_event(event_id=f"e-{i}") for i in range(35)]
    result = queue(sqs).send_batch(events)
    assert result.failed == tuple(range(10, 35))
    assert result.may_have_landed == ()  # no connection: certainly not sent
    assert len(sqs.calls) == 2


def test_no_call_starts_once_the_time_budget_is_spent() -> None:
    sqs = FakeSqs()
    ticks = iter(range(100))  # each look at the clock is one second later
    events = [make_event(event_id=f"e-{i}") for i in range(45)]
    result = queue(sqs).send_batch(events, budget_s=2.5, clock=lambda: float(next(ticks)))
    assert len(sqs.calls) == 3  # started at 0; checked at 1, 2 (calls 2, 3); 3 > 2.5: stop
    assert result.failed == tuple(range(30, 45))
    assert result.may_have_landed == ()
