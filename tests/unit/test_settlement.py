"""SQS batch chores: ten entries and 1 MiB a call, and every failure reported by message id."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from botocore.exceptions import EndpointConnectionError
from hypothesis import given
from hypothesis import strategies as st

from chalicelib.destinations import registry
from chalicelib.destinations.base import call_budget_ms
from chalicelib.events import Event, ProfileUpdate, Session
from chalicelib.queue import (
    SMALL_ENTRY_BYTES,
    SQS_BATCH_BYTES,
    SQS_BATCH_LIMIT,
    SQS_MESSAGE_BYTES,
    calls_needed,
    message_bytes,
    sqs_calls,
)
from chalicelib.rules import CONSENT_TYPES
from chalicelib.service_models import service_model
from chalicelib.settlement import (
    CONSUMER_SQS,
    LETTER_ATTRIBUTE_BYTES,
    BatchQueue,
    DeadLetter,
    DeadLetterQueue,
    Receipt,
    fitted_letter,
)
from tests.factories import INSTANT, make_event


class FakeSqs:
    """Fails the entries whose receipt handle or body starts with "fail"."""

    def __init__(self, broken_calls: int = 0) -> None:
        self.calls: list[list[dict[str, Any]]] = []
        self.broken_calls = broken_calls

    def get_queue_url(self, QueueName: str) -> dict[str, str]:  # noqa: N803
        return {"QueueUrl": f"http://sqs/{QueueName}"}

    def _answer(self, entries: list[dict[str, Any]], key: str) -> dict[str, Any]:
        self.calls.append(entries)
        if len(self.calls) <= self.broken_calls:
            raise EndpointConnectionError(endpoint_url="http://sqs")
        failed = [{"Id": e["Id"], "Code": "X"} for e in entries if e[key].startswith("fail")]
        return {"Failed": failed, "Successful": []}

    def delete_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        return self._answer(Entries, "ReceiptHandle")

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, Any]]) -> dict[str, Any]:  # noqa: N803
        return self._answer(Entries, "MessageBody")


def test_delete_goes_ten_at_a_time_and_reports_what_failed() -> None:
    sqs = FakeSqs()
    receipts = [Receipt(f"m-{i}", "fail" if i in (3, 17) else f"h-{i}") for i in range(25)]
    assert BatchQueue(sqs, "events").delete(receipts) == ["m-3", "m-17"]  # type: ignore[arg-type]
    assert [len(call) for call in sqs.calls] == [10, 10, 5]


def test_a_failed_call_fails_every_entry_in_it() -> None:
    sqs = FakeSqs(broken_calls=1)
    receipts = [Receipt(f"m-{i}", f"h-{i}") for i in range(12)]
    failed = BatchQueue(sqs, "events").delete(receipts)  # type: ignore[arg-type]
    assert failed == [f"m-{i}" for i in range(10)]


def test_park_keeps_the_body_and_attaches_the_reason() -> None:
    sqs = FakeSqs()
    letters = [
        DeadLetter("m-1", '{"v":1}', "400 bad", "pinpoint"),
        DeadLetter("m-2", "fail", "x", "decode"),
    ]
    assert DeadLetterQueue(sqs, "dlq").park(letters) == ["m-2"]  # type: ignore[arg-type]
    first = sqs.calls[0][0]
    assert first["MessageBody"] == '{"v":1}'
    assert first["MessageAttributes"]["rejection_reason"] == {
        "DataType": "String",
        "StringValue": "400 bad",
    }
    assert first["MessageAttributes"]["original_message_id"]["StringValue"] == "m-1"


# Sized by bytes as well as count --------------------------------------------------------------


def sent_calls(sqs: FakeSqs) -> list[tuple[int, int]]:
    """(entries, bytes) of each call, bytes as SQS counts them."""
    return [
        (len(call), sum(message_bytes(e["MessageBody"], e.get("MessageAttributes")) for e in call))
        for call in sqs.calls
    ]


def test_letters_go_in_calls_of_at_most_ten_and_1_mib_and_every_one_is_parked() -> None:
    sqs = FakeSqs()
    letters = [
        DeadLetter(f"m-{n}", f"{n}" + "x" * 200_000, "body is not JSON", "decode") for n in range(6)
    ]
    assert DeadLetterQueue(sqs, "dlq").park(letters) == []  # type: ignore[arg-type]
    calls = sent_calls(sqs)
    assert all(entries <= SQS_BATCH_LIMIT and size <= SQS_BATCH_BYTES for entries, size in calls)
    assert [entries for entries, _ in calls] == [5, 1]  # 1.2 MB: two calls, not one
    parked = [e for call in sqs.calls for e in call]
    assert [e["MessageBody"] for e in parked] == [letter.body for letter in letters]
    assert {e["MessageAttributes"]["rejection_reason"]["StringValue"] for e in parked} == {
        "body is not JSON"
    }


def test_small_letters_still_go_ten_to_a_call() -> None:
    sqs = FakeSqs()
    letters = [DeadLetter(f"m-{n}", '{"v":1}', "400 bad", "pinpoint") for n in range(25)]
    DeadLetterQueue(sqs, "dlq").park(letters)  # type: ignore[arg-type]
    assert [entries for entries, _ in sent_calls(sqs)] == [10, 10, 5]


def test_copies_go_in_calls_of_at_most_1_mib() -> None:
    sqs = FakeSqs()
    wide = [make_event(n, attributes={"a": "v" * 200}) for n in range(3)]
    huge = [
        (f"m-{n}", replace(wide[0], event_id=f"big-{n}", endpoint_id="x" * 120_000))
        for n in range(12)
    ]
    queue = BatchQueue(sqs, "events")  # type: ignore[arg-type]
    assert queue.requeue(huge + [(f"w-{n}", e) for n, e in enumerate(wide)]) == []
    calls = sent_calls(sqs)
    assert all(entries <= SQS_BATCH_LIMIT and size <= SQS_BATCH_BYTES for entries, size in calls)
    assert sum(entries for entries, _ in calls) == 15
    assert len(calls) <= calls_needed(
        15, sum(size for _, size in calls if size > SMALL_ENTRY_BYTES)
    )


def test_a_letter_that_fits_beside_its_reason_is_sent_unchanged() -> None:
    body = "x" * (SQS_MESSAGE_BYTES - 2000)
    sent, attributes = fitted_letter(DeadLetter("m-1", body, "body is not JSON", "decode"))
    assert sent == body
    assert "body_shortened" not in attributes


def test_a_body_too_large_for_its_reason_is_cut_when_it_is_no_event() -> None:
    body = "€" * (SQS_MESSAGE_BYTES // 3)  # three bytes a character: never cut in half
    sent, attributes = fitted_letter(DeadLetter("m-1", body, "body is not JSON", "decode"))
    assert message_bytes(sent, attributes) <= SQS_MESSAGE_BYTES
    assert body.startswith(sent)
    assert attributes["rejection_reason"]["StringValue"] == "body is not JSON"
    kept = len(sent.encode())
    assert attributes["body_shortened"]["StringValue"] == (
        f"cut to its first {kept:,} of {len(body.encode()):,} bytes"
    )
    assert kept > SQS_MESSAGE_BYTES - LETTER_ATTRIBUTE_BYTES


def test_a_body_too_large_for_its_reason_is_parked_as_its_event_when_it_decoded() -> None:
    event = make_event(1)
    padded = event.to_message()[:-1] + ',"ignored":"' + "x" * SQS_MESSAGE_BYTES + '"}'
    sent, attributes = fitted_letter(
        DeadLetter("m-1", padded, "PutEvents event failed: 400", "pinpoint", event)
    )
    assert sent == event.to_message()
    assert attributes["body_shortened"]["StringValue"] == (
        f"the event re-encoded, from a body of {len(padded.encode()):,} bytes"
    )


def test_a_reason_is_cut_to_1024_bytes_without_splitting_a_character() -> None:
    _, attributes = fitted_letter(DeadLetter("m-1", "{}", "é" * 600, "decode"))
    assert attributes["rejection_reason"]["StringValue"] == "é" * 512


def test_the_largest_event_the_rules_allow_is_a_small_entry() -> None:
    """Only a body as it came can make a large letter (at most one a message): every other
    letter, and every copy, carries an event re-encoded, and the widest the pixel's rules
    allow, with every field at its limit in the characters UTF-8 JSON makes widest (3 bytes
    for one UTF-16 unit, or an escaped quote), and all five destinations named, still fits
    ten to a call beside the largest attributes. The settlement reserve counts on it."""
    wide = "€"  # U+20AC: 3 bytes, one UTF-16 unit
    quotes = '"' * 128  # printable ASCII, 2 bytes each in JSON
    keys = [wide * 49 + chr(0x4E00 + n) for n in range(300)]
    event = make_event(
        1,
        event_id=quotes,
        endpoint_id=quotes,
        event_type=wide * 50,
        session=Session(quotes, INSTANT),
        attributes={key: wide * 200 for key in keys[:40]},
        profile=ProfileUpdate(
            user_id=quotes,
            user_attributes={"a": tuple(wide * 98 + chr(0x4E00 + n) for n in range(50))},
            endpoint_metrics={key: -2.2250738585072014e-308 for key in keys[40:289]},
        ),
        destinations=registry.known(),
        client_timestamp=INSTANT,
        consent=dict.fromkeys(CONSENT_TYPES, "granted"),
    )
    body = event.to_message()
    Event.from_message(body)  # every rule passes: the pixel could have written it
    print(f"largest event: {message_bytes(body):,} bytes")
    assert message_bytes(body) + LETTER_ATTRIBUTE_BYTES <= SMALL_ENTRY_BYTES


@given(
    st.lists(
        st.one_of(
            st.integers(1, SMALL_ENTRY_BYTES), st.integers(SMALL_ENTRY_BYTES + 1, SQS_MESSAGE_BYTES)
        ),
        max_size=80,
    )
)
def test_sqs_calls_keep_both_limits_and_the_bound_the_reserve_counts(sizes: list[int]) -> None:
    calls = sqs_calls(sizes)
    assert sorted(i for call in calls for i in call) == list(range(len(sizes)))
    for call in calls:
        assert 1 <= len(call) <= SQS_BATCH_LIMIT
        assert sum(sizes[i] for i in call) <= SQS_BATCH_BYTES
    large = sum(size for size in sizes if size > SMALL_ENTRY_BYTES)
    assert len(calls) <= calls_needed(len(sizes), large)


def test_a_batch_of_large_poison_needs_at_most_one_more_round_which_a_call_budget_covers() -> None:
    """settlement_reserve_ms counts the pixel's messages only; a batch with large poison keeps
    more in hand. Lambda's payload caps a batch at 6 MB, so its large entries (each
    over a tenth of a call, with its attributes) take at most 13 calls: one round of 32 at
    most, which takes less than the one destination call settlement_problem counts beside
    the reserve, even at DELIVERY_TIMEOUT_SECONDS=1."""
    payload = 6 * 2**20
    largest_count = payload // SMALL_ENTRY_BYTES + 1
    extra = calls_needed(0, payload + largest_count * LETTER_ATTRIBUTE_BYTES)
    assert extra <= CONSUMER_SQS.workers
    assert CONSUMER_SQS.call_ms <= call_budget_ms(1)


def test_the_limits_are_the_ones_botocores_sqs_model_states() -> None:
    """Taken from the model (and AWS's quotas, docs/delivery.md#sqs-limits): a botocore
    whose words differ fails here, to be read again."""
    model = service_model("sqs")
    batch = model.operation_model("SendMessageBatch").documentation
    assert (SQS_BATCH_BYTES, SQS_MESSAGE_BYTES) == (1_048_576, 1_048_576)
    assert "are both 1 MiB 1,048,576 bytes" in batch
    assert (
        f"request is {SQS_BATCH_LIMIT}.</p>"
        in model.shape_for("TooManyEntriesInBatchRequest").documentation
    )
    assert "part of the message size restriction (1 MiB or 1,048,576 bytes)" in (
        model.shape_for("MessageAttributeValue").documentation
    )
