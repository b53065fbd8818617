"""Fixtures: moto's SQS server and the Pinpoint stand-in on loopback, one pipeline a test;
SQS that fails on purpose; `chalice local` serving the pipeline; DynamoDB tables keyed as
the dedupe store and the erasure list are."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import TYPE_CHECKING

import boto3
import pytest
from pytest_httpserver import HTTPServer

from chalicelib import runtime
from devtools.standins.pinpoint import PinpointStandIn
from tests.integration.harness import (
    APPLICATION_ID,
    MAX_RECEIVE_COUNT,
    FlakySqs,
    Pipeline,
    serving_chalice_local,
)

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient


@pytest.fixture
def dynamodb(moto_url: str) -> DynamoDBClient:
    return boto3.client("dynamodb", endpoint_url=moto_url)


@pytest.fixture
def pipeline(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Pipeline]:
    suffix = uuid.uuid4().hex[:8]
    sqs = boto3.client("sqs", endpoint_url=moto_url)
    dead_letter_url = sqs.create_queue(QueueName=f"events-dlq-{suffix}")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    events_url = sqs.create_queue(
        QueueName=f"events-{suffix}",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    with PinpointStandIn(applications=[APPLICATION_ID]) as pinpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", moto_url)
        monkeypatch.setenv("AWS_ENDPOINT_URL_PINPOINT", pinpoint.url)
        monkeypatch.setenv("EVENTS_QUEUE", f"events-{suffix}")
        monkeypatch.setenv("DEAD_LETTER_QUEUE", f"events-dlq-{suffix}")
        monkeypatch.setenv("PINPOINT_APPLICATION_ID", APPLICATION_ID)
        monkeypatch.setenv("DESTINATIONS", "pinpoint")  # these tests test Pinpoint
        runtime.reset()
        yield Pipeline(sqs, events_url, dead_letter_url, pinpoint)


@pytest.fixture
def flaky_sqs(
    pipeline: Pipeline, moto_url: str, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[FlakySqs]:
    """moto behind a proxy that answers the first N SendMessage(Batch) calls with a 500."""
    proxy = FlakySqs(moto_url)
    httpserver.expect_request("/", method="POST").respond_with_handler(proxy)
    monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("ENQUEUE_ATTEMPTS", "3")
    runtime.reset()
    yield proxy
    httpserver.check()


@pytest.fixture
def chalice_local(pipeline: Pipeline) -> Iterator[str]:
    """`chalice local`'s own server and request handler (what `chalice local` runs), in
    this process so that it sees the pipeline's settings; its URL."""
    with serving_chalice_local() as url:
        yield url
