"""The suppression list on moto's DynamoDB: the operator's writes (devtools/ops/forget.py)
read by the consumer (chalicelib/erasure.py), and the consumer's batches with erasure on,
off, and with a list it cannot read."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest
from pytest_httpserver import HTTPServer

from chalicelib import runtime
from chalicelib.erasure import SuppressionList, suppression_key
from chalicelib.events import ProfileUpdate
from devtools.ops.forget import ErasureList
from tests.factories import make_event
from tests.integration.harness import Pipeline, id_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def table(dynamodb: DynamoDBClient) -> Iterator[str]:
    """A table as both deploy paths create it: key `id` (string), nothing else."""
    name = id_table(dynamodb, "erasure")
    yield name
    dynamodb.delete_table(TableName=name)


def calls(client: Any) -> list[str]:
    made: list[str] = []

    def note(event_name: str, **_: Any) -> None:
        made.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-send.dynamodb.*", note)
    return made


def test_what_the_operator_lists_the_consumer_finds_and_the_table_holds_no_id(
    dynamodb: DynamoDBClient, table: str
) -> None:
    operator = ErasureList(dynamodb, table)
    first = operator.add("user_id", "alice@example.com", "2026-12-07T10:00:00.000Z")
    assert first.added
    again = operator.add("user_id", "alice@example.com", "2026-12-08T10:00:00.000Z")
    assert (again.added, again.erased_at) == (False, "2026-12-07T10:00:00.000Z")
    operator.announced(again, "customer-profiles")
    assert operator.add("user_id", "alice@example.com", "x").announced == {"customer-profiles"}
    items = dynamodb.scan(TableName=table)["Items"]
    assert "alice" not in json.dumps(items)
    assert items[0]["id"] == {"S": suppression_key("user_id", "alice@example.com")}
    events = [
        make_event(1, endpoint_id="E1", profile=ProfileUpdate(user_id="alice@example.com")),
        make_event(2, endpoint_id="E1"),
    ]
    assert SuppressionList(dynamodb, table).erased(events) == {0}


def test_one_batch_get_per_100_ids(dynamodb: DynamoDBClient, table: str) -> None:
    """docs/performance.md: the list's cost per batch."""
    listed = SuppressionList(dynamodb, table)
    made = calls(dynamodb)
    assert listed.erased([make_event(n, endpoint_id=f"E{n}") for n in range(100)]) == set()
    assert made == ["BatchGetItem"]
    made.clear()
    listed.erased([make_event(n, endpoint_id=f"E{n}") for n in range(250)])
    assert made == ["BatchGetItem"] * 3


def body(event_id: str, endpoint: str) -> str:
    return make_event(
        0, event_id=event_id, endpoint_id=endpoint, event_type="purchase"
    ).to_message()


@pytest.fixture
def erasing(pipeline: Pipeline, table: str, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
    monkeypatch.setenv("ERASURE_TABLE", table)
    runtime.reset()
    return table


def test_a_listed_visitors_queued_events_are_dropped_and_the_rest_delivered(
    pipeline: Pipeline, erasing: str, dynamodb: DynamoDBClient, capsys: pytest.CaptureFixture[str]
) -> None:
    ErasureList(dynamodb, erasing).add("endpoint_id", "gone", "2026-12-07T10:00:00.000Z")
    for n in range(3):
        pipeline.send_raw(body(f"g-{n}", "gone"))
        pipeline.send_raw(body(f"k-{n}", "kept"))
    pipeline.consumer().drain()
    assert sorted(event_id for _, event_id in pipeline.delivered()) == ["k-0", "k-1", "k-2"]
    assert pipeline.queued() == 0
    assert pipeline.dead_letters() == []
    assert '"EventsErased":[3.0]' in capsys.readouterr().out


def test_a_list_that_cannot_be_read_keeps_the_events_queued(
    pipeline: Pipeline, erasing: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ERASURE_TABLE", "no-such-table")
    runtime.reset()
    pipeline.send_raw(body("e-1", "anyone"))
    poll = pipeline.consumer().poll()
    assert (poll.received, poll.deleted) == (1, 0)
    assert pipeline.delivered() == []
    assert pipeline.queued() == 1


def test_with_erasure_off_the_consumer_never_calls_dynamodb(
    pipeline: Pipeline, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every DynamoDB request of this process goes to a server that records it."""
    httpserver.expect_request("/").respond_with_data("", status=500)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", httpserver.url_for("/").rstrip("/"))
    monkeypatch.delenv("ERASURE_TABLE", raising=False)
    monkeypatch.delenv("DEDUPE_TABLE", raising=False)
    runtime.reset()
    pipeline.send_raw(body("e-1", "anyone"))
    pipeline.consumer().drain()
    assert pipeline.delivered() == [("purchase", "e-1")]
    assert httpserver.log == []
    # The same server sees the look-up once erasure is on: the check above can see one.
    monkeypatch.setenv("ERASURE_TABLE", "pixel-relay-test-erasure")
    runtime.reset()
    pipeline.send_raw(body("e-2", "anyone"))
    pipeline.consumer().poll()
    first_request = httpserver.log[0][0]
    assert json.loads(first_request.data)["RequestItems"] == {
        "pixel-relay-test-erasure": {
            "Keys": [{"id": {"S": suppression_key("endpoint_id", "anyone")}}],
            "ConsistentRead": True,
            "ProjectionExpression": "id",
        }
    }
    assert pipeline.delivered() == [("purchase", "e-1")]
