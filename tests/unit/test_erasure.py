"""The suppression list as the consumer reads it (chalicelib/erasure.py), and what becomes of
a forgotten visitor's messages in a batch: dropped, sent nowhere, never parked or retried;
every message retried when the list cannot be read; no look-up at all with erasure off."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError

from chalicelib.delivery import BatchDelivery, BatchIncompleteError
from chalicelib.env import ConfigError
from chalicelib.erasure import (
    READ_BUDGET_MS,
    ErasureSettings,
    SuppressionList,
    SuppressionUnavailableError,
    event_keys,
    suppression_key,
)
from chalicelib.events import Event, ProfileUpdate
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft
from chalicelib.table_reads import BATCH_GET_LIMIT
from tests.factories import FakeQueues, make_event, queued_message

TABLE = "pixel-relay-test-erasure"


class FakeDynamoDB:
    """BatchGetItem over a set of listed keys; can fail, or leave keys unprocessed."""

    def __init__(self, listed: Iterable[str] = (), fail: Exception | None = None) -> None:
        self.listed = set(listed)
        self.fail = fail
        self.unprocessed_rounds = 0
        self.requests: list[dict[str, Any]] = []

    def batch_get_item(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.fail is not None:
            raise self.fail
        asked = request["RequestItems"][TABLE]
        keys = [key["id"]["S"] for key in asked["Keys"]]
        if self.unprocessed_rounds:
            self.unprocessed_rounds -= 1
            return {"Responses": {TABLE: []}, "UnprocessedKeys": {TABLE: {"Keys": asked["Keys"]}}}
        return {"Responses": {TABLE: [{"id": {"S": k}} for k in keys if k in self.listed]}}


NOT_AN_EVENT = replace(queued_message(0), message_id="m-bad", body="not json")


def suppression(client: FakeDynamoDB) -> SuppressionList:
    return SuppressionList(client, TABLE)  # type: ignore[arg-type]


class Recording:
    """A destination that records what it was sent."""

    def __init__(self, name: str = "customer-profiles") -> None:
        self.name = name
        self.received: list[str] = []

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        self.received.extend(e.event_id for e in events)
        return [DELIVERED] * len(events)


def batch(
    client: FakeDynamoDB | None, queues: FakeQueues, *destinations: Recording
) -> BatchDelivery:
    return BatchDelivery(
        list(destinations) or [Recording()],
        queues,
        queues,
        report_batch_item_failures=True,
        suppression=None if client is None else suppression(client),
    )


def metric(output: str, name: str) -> float:
    """The value of counter `name` in the EMF documents printed on stdout (0 if none)."""
    total = 0.0
    for line in output.splitlines():
        try:
            document = json.loads(line)
        except ValueError:
            continue
        if isinstance(document, dict) and "_aws" in document and name in document:
            value = document[name]
            total += float(sum(value) if isinstance(value, list) else value)
    return total


# The key ----------------------------------------------------------------------------------


def test_keys_are_digests_that_tell_kinds_and_values_apart() -> None:
    endpoint = suppression_key("endpoint_id", "alice@example.com")
    assert len(endpoint) == 32
    assert "alice" not in endpoint
    assert endpoint == suppression_key("endpoint_id", "alice@example.com")
    assert endpoint != suppression_key("user_id", "alice@example.com")
    # No separator inside an id makes two keys meet.
    assert suppression_key("user_id", "a b") != suppression_key("user_id", "a")


def test_an_event_is_keyed_by_its_endpoint_id_and_user_id() -> None:
    anonymous = make_event(1, endpoint_id="E1")
    signed_in = make_event(2, endpoint_id="E1", profile=ProfileUpdate(user_id="U1"))
    assert event_keys(anonymous) == [suppression_key("endpoint_id", "E1")]
    assert event_keys(signed_in) == [
        suppression_key("endpoint_id", "E1"),
        suppression_key("user_id", "U1"),
    ]


@pytest.mark.parametrize("name", ["ab", "a" * 256, "has space", "tab\tx"])
def test_a_table_name_dynamodb_refuses_is_refused_naming_the_setting(name: str) -> None:
    with pytest.raises(ConfigError, match="ERASURE_TABLE"):
        ErasureSettings.from_env({"ERASURE_TABLE": name})


def test_erasure_is_off_unless_a_table_is_named() -> None:
    assert ErasureSettings.from_env({}).table is None
    assert ErasureSettings.from_env({"ERASURE_TABLE": " "}).table is None
    assert ErasureSettings.from_env({"ERASURE_TABLE": TABLE}).table == TABLE


# Reading the list -------------------------------------------------------------------------


def test_one_consistent_batch_get_per_100_distinct_ids() -> None:
    client = FakeDynamoDB(listed={suppression_key("endpoint_id", "E7")})
    events = [make_event(n, endpoint_id=f"E{n % 150}") for n in range(300)]
    erased = suppression(client).erased(events)
    assert erased == {n for n in range(300) if n % 150 == 7}
    assert len(client.requests) == 2  # 150 distinct endpoint ids
    assert all(r["RequestItems"][TABLE]["ConsistentRead"] for r in client.requests)
    assert [len(r["RequestItems"][TABLE]["Keys"]) for r in client.requests] == [
        BATCH_GET_LIMIT,
        50,
    ]


def test_a_user_id_on_the_list_erases_its_events_from_any_endpoint() -> None:
    client = FakeDynamoDB(listed={suppression_key("user_id", "U1")})
    events = [
        make_event(1, endpoint_id="E1", profile=ProfileUpdate(user_id="U1")),
        make_event(2, endpoint_id="E2", profile=ProfileUpdate(user_id="U1")),
        make_event(3, endpoint_id="E1"),  # the same device, signed out: not named by U1
    ]
    assert suppression(client).erased(events) == {0, 1}


def test_unprocessed_keys_are_asked_again_then_the_list_counts_as_unreadable() -> None:
    client = FakeDynamoDB(listed={suppression_key("endpoint_id", "ep-1")})
    client.unprocessed_rounds = 2
    assert suppression(client).erased([make_event(1)]) == {0}
    assert len(client.requests) == 3
    client.unprocessed_rounds = 3
    with pytest.raises(SuppressionUnavailableError, match="UnprocessedKeys"):
        suppression(client).erased([make_event(1)])


def test_no_look_up_starts_without_the_time_it_may_take() -> None:
    client = FakeDynamoDB()
    with pytest.raises(SuppressionUnavailableError, match="out of time"):
        suppression(client).erased([make_event(1)], lambda: READ_BUDGET_MS - 1)
    assert client.requests == []


# The consumer -----------------------------------------------------------------------------


def test_a_forgotten_visitors_events_are_dropped_counted_never_parked_or_retried(
    capsys: pytest.CaptureFixture[str],
) -> None:
    client = FakeDynamoDB(listed={suppression_key("endpoint_id", "gone")})
    queues = FakeQueues()
    first, second = Recording("customer-profiles"), Recording("pinpoint")
    messages = [
        queued_message(1, endpoint_id="gone"),
        queued_message(2, endpoint_id="kept"),
        queued_message(3, endpoint_id="gone", destinations=("pinpoint",)),  # a requeued copy
        queued_message(4, endpoint_id="gone"),
    ]
    # A resend of event 1 in the same batch (same endpoint and event id).
    messages.append(replace(messages[0], message_id="m-1-again", receipt_handle="r-1-again"))
    answer = batch(client, queues, first, second).handle(messages)
    assert answer == {"batchItemFailures": []}  # all finished: deleted by Lambda
    assert first.received == second.received == ["e-2"]
    assert queues.parked == []
    assert queues.requeued == []
    assert metric(capsys.readouterr().out, "EventsErased") == 4


def test_report_counts_erased_apart_from_delivered() -> None:
    client = FakeDynamoDB(listed={suppression_key("user_id", "U1")})
    report = batch(client, FakeQueues()).settle(
        [queued_message(1, profile=ProfileUpdate(user_id="U1")), queued_message(2)]
    )
    assert report.erased == 1
    assert report.delivered == ("m-2",)
    assert report.retry == report.parked == ()


@pytest.mark.parametrize(
    ("failure", "expected"),
    [
        (EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), "EndpointConnectionError"),
        (
            ClientError(
                {"Error": {"Code": "ResourceNotFoundException", "Message": "no table"}},
                "BatchGetItem",
            ),
            "ResourceNotFoundException",
        ),
    ],
)
def test_an_unreadable_list_retries_the_batch_and_sends_nothing(
    failure: Exception,
    expected: str,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
) -> None:
    queues = FakeQueues()
    destination = Recording()
    messages = [queued_message(1), queued_message(2), NOT_AN_EVENT]
    with pytest.raises(BatchIncompleteError, match="2 of 3"):
        BatchDelivery(
            [destination],
            queues,
            queues,
            False,
            suppression=suppression(FakeDynamoDB(fail=failure)),
        ).handle(messages)
    assert destination.received == []
    # The poison message is parked as always; the events wait for the list.
    assert [letter.stage for letter in queues.parked] == ["decode"]
    assert queues.deleted == ["m-bad"]
    output = capsys.readouterr().out
    assert metric(output, "ErasureListReadFailures") == 2
    assert metric(output, "EventsRetried") == 2
    [retried] = [r for r in caplog.records if r.getMessage() == "events will be retried"]
    assert list(retried.__dict__["reasons"]) == [f"erasure list not read: {expected}"]


def test_with_erasure_off_nothing_is_looked_up() -> None:
    queues = FakeQueues()
    destination = Recording()
    report = batch(None, queues, destination).settle([queued_message(1, endpoint_id="gone")])
    assert destination.received == ["e-1"]
    assert report.delivered == ("m-1",)
    assert report.erased == 0


def test_a_look_up_gets_the_batchs_time_left() -> None:
    """A batch started with too little time cannot ask: its events are retried, not sent."""
    client = FakeDynamoDB()
    destination = Recording()
    report = batch(client, FakeQueues(), destination).settle(
        [queued_message(1)], lambda: READ_BUDGET_MS - 1
    )
    assert report.retry == ("m-1",)
    assert destination.received == []


def test_erased_events_are_reported_in_the_batch_log(caplog: pytest.LogCaptureFixture) -> None:
    client = FakeDynamoDB(listed={suppression_key("endpoint_id", "ep-1")})
    batch(client, FakeQueues()).handle([queued_message(1)])
    [settled] = [r for r in caplog.records if r.getMessage() == "batch settled"]
    assert (settled.__dict__["erased"], settled.__dict__["delivered"]) == (1, 0)
