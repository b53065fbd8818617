"""Firehose's documented limits refuse what AWS refuses, locally and through the proxy."""

from __future__ import annotations

import base64

import pytest

from devtools.standins import strict
from devtools.standins.moto_proxy import StrictMotoProxy, judge
from tests.devtools.standins.proxy_calls import client, refused


def test_a_full_batch_of_small_records_passes() -> None:
    params = {"DeliveryStreamName": "s", "Records": [{"Data": b"x"}] * 500}
    assert strict.problems("firehose", "PutRecordBatch", params) == []


@pytest.mark.parametrize(
    ("operation", "params", "reason"),
    [
        (
            "PutRecordBatch",
            {"DeliveryStreamName": "s", "Records": [{"Data": b"x" * 1_000_000}] * 5},
            "a request may have 4 MiB",
        ),
        ("PutRecord", {"DeliveryStreamName": "s", "Record": {"Data": b"x" * 1_024_001}}, "bytes"),
    ],
)
def test_each_rule_refuses(operation: str, params: dict[str, object], reason: str) -> None:
    found = strict.problems("firehose", operation, params)
    assert any(reason in problem for problem in found), found


def test_moto_behind_the_proxy_refuses_a_batch_over_4_mib(strict_moto: StrictMotoProxy) -> None:
    firehose = client(strict_moto, "firehose")
    records = [{"Data": b"x" * 1_000_000}] * 5
    assert "4 MiB" in refused(firehose.put_record_batch, DeliveryStreamName="s", Records=records)
    refusals = {(r.service, r.operation) for r in strict_moto.refusals}
    assert ("firehose", "PutRecordBatch") in refusals


def test_the_proxy_reads_a_json_target_request_into_its_parameters() -> None:
    signed = "AWS4-HMAC-SHA256 Credential=AK/20261207/us-east-1/firehose/aws4_request"
    headers = {"Authorization": signed, "X-Amz-Target": "Firehose_20150804.PutRecordBatch"}
    data = base64.b64encode(b"x").decode()
    body = (
        b'{"DeliveryStreamName": "s", "Records": ['
        + b",".join([b'{"Data": "' + data.encode() + b'"}'] * 501)
        + b"]}"
    )
    service, operation, found = judge("POST", "/", headers, body) or ("", "", [])
    assert (service, operation) == ("firehose", "PutRecordBatch")
    assert any("501" in problem for problem in found)
