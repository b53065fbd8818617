"""`make policies` for stages with Firehose or EventBridge: each on its own resource."""

from __future__ import annotations

from chalicelib.destinations.base import own_arn
from devtools.deploy.policies import consumer_policy


def test_firehose_and_eventbridge_each_add_one_statement_on_their_own_resource() -> None:
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "DESTINATIONS": "firehose,eventbridge,customer-profiles",
        "FIREHOSE_STREAM": "events-stream",
        "EVENTBRIDGE_BUS": "shop",
        "PROFILES_DOMAIN": "shop-domain",
    }
    statements = {s.get("Sid"): s for s in consumer_policy(environment, "fn")["Statement"]}
    assert statements["WriteFirehose"]["Action"] == ["firehose:PutRecordBatch"]
    assert statements["WriteFirehose"]["Resource"] == (
        "arn:${AWS::Partition}:firehose:${AWS::Region}:${AWS::AccountId}"
        ":deliverystream/events-stream"
    )
    assert statements["PutBusEvents"]["Action"] == ["events:PutEvents"]
    assert statements["PutBusEvents"]["Resource"] == own_arn("events", "event-bus/shop")
    assert "PutProfileObjects" in statements


def test_an_eventbridge_bus_given_by_arn_is_granted_by_that_arn() -> None:
    arn = "arn:aws:events:eu-west-1:123456789012:event-bus/central"
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "DESTINATIONS": "eventbridge",
        "EVENTBRIDGE_BUS": arn,
    }
    statements = {s.get("Sid"): s for s in consumer_policy(environment, "fn")["Statement"]}
    assert statements["PutBusEvents"]["Resource"] == arn
