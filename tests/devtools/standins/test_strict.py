"""Every rule the stand-ins and the moto proxy apply beyond botocore's own validator refuses
at least once, and what AWS accepts passes: the model's maxima, patterns, enums and list
and map sizes, and AWS's documented limits (devtools/standins/strict.py; each service's own
in limits/)."""

from __future__ import annotations

from typing import Any

import pytest

from devtools.standins import strict
from devtools.standins.moto_proxy import StrictMotoProxy, judge
from tests.devtools.standins.proxy_calls import client, refused

MIB = 1024 * 1024
CONDITION = {
    "EventTriggerDimensions": [
        {"ObjectAttributes": [{"FieldName": "f", "ComparisonOperator": "EQUAL", "Values": ["a"]}]}
    ],
    "LogicalOperator": "ANY",
}
TRIGGER = {
    "DomainName": "d",
    "EventTriggerName": "t",
    "ObjectTypeName": "T",
    "EventTriggerConditions": [CONDITION],
}


def entries(count: int, body: str = "x") -> list[dict[str, Any]]:
    return [{"Id": str(n), "MessageBody": body} for n in range(count)]


ACCEPTED: list[tuple[str, str, dict[str, Any]]] = [
    ("customer-profiles", "CreateEventTrigger", TRIGGER),
    (
        "customer-profiles",
        "BatchPutProfileObject",
        {"DomainName": "d", "ObjectTypeName": "T", "Items": [{"Id": "1", "Object": "{}"}] * 10},
    ),
    ("sqs", "SendMessageBatch", {"QueueUrl": "q", "Entries": entries(10)}),
    ("sqs", "ReceiveMessage", {"QueueUrl": "q", "MaxNumberOfMessages": 10, "WaitTimeSeconds": 20}),
]


@pytest.mark.parametrize(("service", "operation", "params"), ACCEPTED)
def test_what_aws_accepts_passes(service: str, operation: str, params: dict[str, Any]) -> None:
    assert strict.problems(service, operation, params) == []


REFUSED: list[tuple[str, str, dict[str, Any], str]] = [
    # The model, beyond botocore's validator: a maximum length, a pattern, an enum, list and
    # map sizes, a number's maximum, a blob's size.
    ("customer-profiles", "CreateEventTrigger", {**TRIGGER, "DomainName": "d" * 65}, "65"),
    ("customer-profiles", "CreateEventTrigger", {**TRIGGER, "DomainName": "a b"}, "pattern"),
    ("customer-profiles", "CreateEventTrigger", {**TRIGGER, "EventTriggerName": "t" * 100}, "100"),
    (
        "customer-profiles",
        "CreateEventTrigger",
        {**TRIGGER, "EventTriggerConditions": [CONDITION] * 6},
        "6 members",
    ),
    (
        "customer-profiles",
        "CreateEventTrigger",
        {
            **TRIGGER,
            "EventTriggerConditions": [
                {
                    **CONDITION,
                    "EventTriggerDimensions": [CONDITION["EventTriggerDimensions"][0]] * 11,
                }
            ],
        },
        "11 members",
    ),
    (
        "customer-profiles",
        "CreateEventTrigger",
        {**TRIGGER, "EventTriggerConditions": [{**CONDITION, "LogicalOperator": "SOME"}]},
        "'SOME' is not one of",
    ),
    (
        "customer-profiles",
        "CreateEventTrigger",
        {**TRIGGER, "EventTriggerLimits": {"Periods": [{"Unit": "DAYS", "Value": 61}]}},
        "61 is over",
    ),
    (
        "customer-profiles",
        "CreateEventTrigger",
        {**TRIGGER, "Tags": {f"k{n}": "v" for n in range(51)}},
        "51 entries",
    ),
    (
        "customer-profiles",
        "BatchPutProfileObject",
        {"DomainName": "d", "ObjectTypeName": "T", "Items": [{"Id": "1", "Object": "{}"}] * 11},
        "11 members",
    ),
    (
        "connectcampaignsv2",
        "PutProfileOutboundRequestBatch",
        {"id": "c", "profileOutboundRequests": [{"clientToken": "t", "profileId": "a" * 32}] * 21},
        "21 members",
    ),
    # AWS's documentation: items, records and request sizes.
    (
        "customer-profiles",
        "PutProfileObject",
        {"DomainName": "d", "ObjectTypeName": "T", "Object": '"' + "é" * 130_000 + '"'},
        "250 KB",
    ),
    ("sqs", "SendMessage", {"QueueUrl": "q", "MessageBody": "x" * (MIB + 1)}, "1 MiB"),
    ("sqs", "SendMessage", {"QueueUrl": "q", "MessageBody": "a\x00b"}, "InvalidMessageContents"),
    ("sqs", "SendMessage", {"QueueUrl": "q", "MessageBody": "x", "DelaySeconds": 901}, "0-900"),
    ("sqs", "SendMessageBatch", {"QueueUrl": "q", "Entries": entries(11)}, "at most 10"),
    (
        "sqs",
        "SendMessageBatch",
        {"QueueUrl": "q", "Entries": entries(6, "x" * 200_000)},
        "a batch may have 1 MiB",
    ),
    (
        "sqs",
        "SendMessageBatch",
        {"QueueUrl": "q", "Entries": [{"Id": "a b", "MessageBody": "x"}]},
        "1-80 of",
    ),
    (
        "sqs",
        "DeleteMessageBatch",
        {"QueueUrl": "q", "Entries": [{"Id": "1", "ReceiptHandle": "r"}] * 2},
        "distinct",
    ),
    ("sqs", "ReceiveMessage", {"QueueUrl": "q", "MaxNumberOfMessages": 11}, "1-10"),
    ("sqs", "ReceiveMessage", {"QueueUrl": "q", "WaitTimeSeconds": 21}, "0-20"),
    (
        "sqs",
        "ChangeMessageVisibility",
        {"QueueUrl": "q", "ReceiptHandle": "r", "VisibilityTimeout": 43_201},
        "0-43200",
    ),
    (
        "sqs",
        "ChangeMessageVisibilityBatch",
        {"QueueUrl": "q", "Entries": [{"Id": "1", "ReceiptHandle": "r", "VisibilityTimeout": -1}]},
        "0-43200",
    ),
]


@pytest.mark.parametrize(("service", "operation", "params", "reason"), REFUSED)
def test_each_rule_refuses(
    service: str, operation: str, params: dict[str, Any], reason: str
) -> None:
    found = strict.problems(service, operation, params)
    assert any(reason in problem for problem in found), found


def test_lengths_count_utf16_units_as_aws_does() -> None:
    # A DomainName is at most 64: 32 emoji are 64 UTF-16 units, 33 are 66.
    name = "\U0001f600"
    assert strict.utf16_length(name * 32) == 64
    assert strict.problems("customer-profiles", "GetDomain", {"DomainName": "a" * 64}) == []


def test_a_java_pattern_with_unicode_classes_is_read() -> None:
    # IAM tag keys: [\p{L}\p{Z}\p{N}_.:/=+\-@]+
    tag = {"RoleName": "r", "Tags": [{"Key": "équipe", "Value": "v"}]}
    assert strict.problems("iam", "TagRole", tag) == []
    tag["Tags"] = [{"Key": "a#b", "Value": "v"}]
    assert any("pattern" in p for p in strict.problems("iam", "TagRole", tag))


# The proxy in front of moto: what tests and `make dev` send (each service's own limits are
# tested in limits/) ---------------------------------------------------------------------


def test_moto_behind_the_proxy_refuses_what_aws_would_refuse(
    strict_moto: StrictMotoProxy,
) -> None:
    sqs = client(strict_moto, "sqs")
    queue = sqs.create_queue(QueueName="strict-proxy-test")["QueueUrl"]
    assert "at most 10" in refused(sqs.send_message_batch, QueueUrl=queue, Entries=entries(11))
    assert "1-10" in refused(sqs.receive_message, QueueUrl=queue, MaxNumberOfMessages=11)
    s3 = client(strict_moto, "s3")
    s3.create_bucket(Bucket="strict-proxy-test")
    assert "COLD" in refused(
        s3.put_object, Bucket="strict-proxy-test", Key="k", Body=b"x", StorageClass="COLD"
    )
    # What AWS accepts reaches moto and is carried out.
    s3.put_object(Bucket="strict-proxy-test", Key="a/b.json", Body=b'{"ok": 1}')
    body = s3.get_object(Bucket="strict-proxy-test", Key="a/b.json")["Body"].read()
    assert body == b'{"ok": 1}'
    sqs.send_message_batch(QueueUrl=queue, Entries=entries(10))
    assert len(sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10)["Messages"]) >= 1
    operations = {(r.service, r.operation) for r in strict_moto.refusals}
    assert {("sqs", "SendMessageBatch"), ("s3", "PutObject")} <= operations


def test_the_proxy_reads_each_protocol_into_the_calls_parameters() -> None:
    # JSON (X-Amz-Target), query (Action) and REST-XML (method and path) as botocore writes
    # them; a request without a signature (moto's own API) is not judged.
    signed = {"Authorization": "AWS4-HMAC-SHA256 Credential=AK/20261207/us-east-1/{}/aws4_request"}
    target = {**signed, "X-Amz-Target": "DynamoDB_20120810.BatchGetItem"}
    target["Authorization"] = target["Authorization"].format("dynamodb")
    keys = b",".join([b'{"id": {"S": "a"}}'] * 101)
    body = b'{"RequestItems": {"t": {"Keys": [' + keys + b"]}}}"
    service, operation, found = judge("POST", "/", target, body) or ("", "", [])
    assert (service, operation) == ("dynamodb", "BatchGetItem")
    assert any("101" in problem for problem in found)
    query = {**signed, "Content-Type": "application/x-www-form-urlencoded"}
    query["Authorization"] = query["Authorization"].format("iam")
    judged = judge(
        "POST", "/", query, b"Action=CreateRole&RoleName=a%20b&AssumeRolePolicyDocument=x"
    )
    assert judged is not None
    assert judged[1] == "CreateRole"
    assert any("pattern" in problem for problem in judged[2])
    rest = {**signed}
    rest["Authorization"] = rest["Authorization"].format("s3")
    assert judge("GET", "/bucket?list-type=2", rest, b"") == ("s3", "ListObjectsV2", [])
    assert judge("POST", "/moto-api/reset", {}, b"") is None
