"""The fault proxy misbehaves exactly as planned, and otherwise stays out of the way."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ConnectionClosedError, EndpointConnectionError, ReadTimeoutError

from tests.fault_proxy import FaultProxy


@pytest.fixture
def proxy(moto_url: str) -> Iterator[FaultProxy]:
    with FaultProxy(moto_url) as started:
        yield started


def _sqs(url: str, read_timeout: float = 5) -> Any:
    config = Config(read_timeout=read_timeout, retries={"total_max_attempts": 1})
    return boto3.client("sqs", endpoint_url=url, config=config)


def _queue(moto_url: str) -> str:
    direct = _sqs(moto_url)
    return str(direct.create_queue(QueueName=f"proxy-{uuid.uuid4().hex}")["QueueUrl"])


def _depth(moto_url: str, queue_url: str) -> int:
    attributes = _sqs(moto_url).get_queue_attributes(
        QueueUrl=queue_url, AttributeNames=["ApproximateNumberOfMessages"]
    )
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


def test_calls_pass_through_unchanged_and_are_counted(proxy: FaultProxy, moto_url: str) -> None:
    queue_url = _queue(moto_url)
    client = _sqs(proxy.url)
    client.send_message(QueueUrl=queue_url, MessageBody="hello")
    received = client.receive_message(QueueUrl=queue_url)["Messages"]
    assert [m["Body"] for m in received] == ["hello"]
    assert proxy.calls["SendMessage"] == 1
    assert proxy.calls["ReceiveMessage"] == 1
    assert not proxy.faults_applied


def test_a_dropped_answer_still_carries_the_call_out(proxy: FaultProxy, moto_url: str) -> None:
    queue_url = _queue(moto_url)
    proxy.drop_answer("SendMessage", times=1)
    client = _sqs(proxy.url)
    with pytest.raises((ConnectionClosedError, EndpointConnectionError)):
        client.send_message(QueueUrl=queue_url, MessageBody="sent but unanswered")
    assert _depth(moto_url, queue_url) == 1  # the caller cannot know it landed
    client.send_message(QueueUrl=queue_url, MessageBody="answered")  # the fault was used up
    assert _depth(moto_url, queue_url) == 2
    assert proxy.faults_applied["SendMessage"] == 1


def test_a_slow_answer_times_the_caller_out_after_the_work_is_done(
    proxy: FaultProxy, moto_url: str
) -> None:
    queue_url = _queue(moto_url)
    proxy.delay("SendMessage", seconds=1.0, times=1)
    client = _sqs(proxy.url, read_timeout=0.3)
    with pytest.raises(ReadTimeoutError):
        client.send_message(QueueUrl=queue_url, MessageBody="slow")
    assert _depth(moto_url, queue_url) == 1


def test_faults_apply_only_to_their_action(proxy: FaultProxy, moto_url: str) -> None:
    queue_url = _queue(moto_url)
    proxy.drop_answer("DeleteMessageBatch", times=None)
    client = _sqs(proxy.url)
    client.send_message(QueueUrl=queue_url, MessageBody="x")
    assert proxy.calls["SendMessage"] == 1
    assert not proxy.faults_applied
