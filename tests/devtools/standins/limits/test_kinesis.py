"""Kinesis's documented limits refuse what AWS refuses, locally and through the proxy."""

from __future__ import annotations

import pytest

from devtools.standins import strict
from devtools.standins.moto_proxy import StrictMotoProxy
from tests.devtools.standins.proxy_calls import client, refused

MIB = 1024 * 1024


def test_a_record_within_the_limits_passes() -> None:
    params = {"StreamName": "s", "Records": [{"Data": b"x", "PartitionKey": "k"}]}
    assert strict.problems("kinesis", "PutRecords", params) == []


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        ([{"Data": b"x" * (10 * MIB + 1), "PartitionKey": "k"}], "bytes; the model allows"),
        ([{"Data": b"x" * 6 * MIB, "PartitionKey": "k"}] * 2, "a request may have 10 MiB"),
        ([{"Data": b"x" * 10 * MIB, "PartitionKey": "key"}], "with its partition key"),
    ],
)
def test_each_rule_refuses(records: list[dict[str, object]], reason: str) -> None:
    found = strict.problems("kinesis", "PutRecords", {"StreamName": "s", "Records": records})
    assert any(reason in problem for problem in found), found


def test_moto_behind_the_proxy_refuses_a_stream_name_aws_refuses(
    strict_moto: StrictMotoProxy,
) -> None:
    kinesis = client(strict_moto, "kinesis")
    assert "pattern" in refused(kinesis.create_stream, StreamName="a b", ShardCount=1)
    assert ("kinesis", "CreateStream") in {(r.service, r.operation) for r in strict_moto.refusals}
