"""The shared dedupe store against moto's DynamoDB: across containers, expiry, failures, cost."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from chalicelib import runtime
from chalicelib.dedupe import DynamoDeliveryStore
from tests.integration.harness import Pipeline, id_table

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def table(dynamodb: DynamoDBClient) -> Iterator[str]:
    """A table as docs/deploy.md creates it: key `id` (string), TTL on `expires_at`."""
    name = id_table(dynamodb, "dedupe")
    dynamodb.update_time_to_live(
        TableName=name,
        TimeToLiveSpecification={"Enabled": True, "AttributeName": "expires_at"},
    )
    yield name
    dynamodb.delete_table(TableName=name)


def calls(client: Any) -> list[str]:
    """Every request the client sends from now on (retries included), by operation."""
    made: list[str] = []

    def note(event_name: str, **_: Any) -> None:
        made.append(event_name.rsplit(".", 1)[-1])

    client.meta.events.register("before-send.dynamodb.*", note)
    return made


def keys(count: int) -> list[tuple[str, str]]:
    return [(f"ep-{i % 7}", str(uuid.uuid4())) for i in range(count)]


def test_recorded_keys_are_seen_per_destination_until_they_expire(
    dynamodb: DynamoDBClient, table: str
) -> None:
    now = [1_800_000_000.0]
    store = DynamoDeliveryStore(dynamodb, table, ttl_seconds=3600, clock=lambda: now[0])
    delivered, other = keys(3), keys(2)
    assert store.record("pinpoint", delivered) == 0
    assert store.seen("pinpoint", delivered + other) == set(delivered)
    assert store.seen("customer-profiles", delivered) == set()
    now[0] += 3601  # DynamoDB may keep an expired item for days: it is ignored
    assert store.seen("pinpoint", delivered) == set()


def test_the_table_holds_digests_and_an_expiry_not_identifiers(
    dynamodb: DynamoDBClient, table: str
) -> None:
    store = DynamoDeliveryStore(dynamodb, table, ttl_seconds=3600, clock=lambda: 1000.0)
    store.record("pinpoint", [("alice@example.com", "e-1")])
    items = dynamodb.scan(TableName=table)["Items"]
    assert len(items) == 1
    assert set(items[0]) == {"id", "expires_at"}
    assert items[0]["expires_at"] == {"N": "4600"}
    assert "alice" not in json.dumps(items)


def test_requests_per_100_events(dynamodb: DynamoDBClient, table: str) -> None:
    """docs/performance.md: 1 BatchGetItem + 4 BatchWriteItem per 100 delivered events."""
    store = DynamoDeliveryStore(dynamodb, table, ttl_seconds=3600)
    made = calls(dynamodb)
    batch = keys(100)
    assert store.seen("pinpoint", batch) == set()
    assert store.record("pinpoint", batch) == 0
    assert made == ["BatchGetItem"] + ["BatchWriteItem"] * 4
    made.clear()
    assert store.seen("pinpoint", batch + keys(150)) == set(batch)
    assert made == ["BatchGetItem"] * 3


@pytest.fixture
def deduped(pipeline: Pipeline, table: str, moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", moto_url)
    monkeypatch.setenv("DEDUPE_TABLE", table)
    runtime.reset()
    return table


def event_body(event_id: str) -> str:
    return json.dumps(
        {
            "version": 1,
            "event_id": event_id,
            "event_type": "purchase",
            "endpoint_id": "ep-1",
            "timestamp": "2026-11-30T10:00:00.000Z",
            "received_at": "2026-11-30T10:00:00.000Z",
        }
    )


def test_one_event_in_two_batches_of_two_containers_reaches_the_destination_once(
    pipeline: Pipeline, deduped: str
) -> None:
    pipeline.send_raw(event_body("e-1"))
    pipeline.send_raw(event_body("e-2"))
    pipeline.consumer().drain()
    runtime.reset()  # another container: a new process, an empty memory
    pipeline.send_raw(event_body("e-1"))
    pipeline.send_raw(event_body("e-3"))
    pipeline.consumer().drain()
    assert sorted(pipeline.delivered()) == [
        ("purchase", "e-1"),
        ("purchase", "e-2"),
        ("purchase", "e-3"),
    ]
    assert pipeline.queued() == 0
    assert pipeline.dead_letters() == []


def test_without_the_table_a_second_container_sends_the_copy_again(pipeline: Pipeline) -> None:
    """What the store is for: the per-container memory alone does not span containers."""
    pipeline.send_raw(event_body("e-1"))
    pipeline.consumer().drain()
    runtime.reset()
    pipeline.send_raw(event_body("e-1"))
    pipeline.consumer().drain()
    assert pipeline.delivered() == [("purchase", "e-1"), ("purchase", "e-1")]


def test_a_missing_table_never_loses_an_event_and_is_counted(
    pipeline: Pipeline,
    deduped: str,
    moto_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("DEDUPE_TABLE", "no-such-table")
    runtime.reset()
    pipeline.send_raw(event_body("e-1"))
    pipeline.consumer().drain()
    assert pipeline.delivered() == [("purchase", "e-1")]
    assert pipeline.queued() == 0
    out = capsys.readouterr().out
    assert '"DedupeStoreReadFailures":[1.0]' in out
    assert '"DedupeStoreWriteFailures":[1.0]' in out
