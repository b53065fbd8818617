"""SQS batch chores: ten entries a call, and every failure reported by message id."""

from __future__ import annotations

from typing import Any

from botocore.exceptions import EndpointConnectionError

from chalicelib.settlement import BatchQueue, DeadLetter, DeadLetterQueue, Receipt


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
