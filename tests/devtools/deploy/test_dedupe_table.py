"""A stage that names DEDUPE_TABLE gets the table in its merge template and the consumer
the two calls it makes on it; a stage that does not gets neither."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import boto3

from devtools.deploy.policies import consumer_policy
from devtools.deploy.template import merge_template
from devtools.paths import ROOT
from devtools.queue_spec import stage_environment


def project_with(tmp_path: Path, environment: dict[str, str]) -> Path:
    (tmp_path / ".chalice").mkdir()
    (tmp_path / "deploy").mkdir()
    shutil.copy(ROOT / "deploy" / "stages.json", tmp_path / "deploy" / "stages.json")
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    config["stages"]["dev"].setdefault("environment_variables", {}).update(environment)
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    return tmp_path


def test_no_table_by_default() -> None:
    assert "DedupeTable" not in merge_template("dev")["Resources"]
    sids = [s.get("Sid") for s in consumer_policy(stage_environment("dev"), "fn")["Statement"]]
    assert "DedupeStore" not in sids


def test_a_named_table_is_created_with_ttl_and_the_consumer_may_use_it(
    tmp_path: Path, moto_url: str
) -> None:
    root = project_with(tmp_path, {"DEDUPE_TABLE": "pixel-relay-dev-dedupe"})
    table = merge_template("dev", root)["Resources"]["DedupeTable"]
    properties = table["Properties"]
    assert properties["TableName"] == "pixel-relay-dev-dedupe"
    assert properties["TimeToLiveSpecification"] == {
        "AttributeName": "expires_at",
        "Enabled": True,
    }
    [statement] = [
        s
        for s in consumer_policy(stage_environment("dev", root), "pixel-relay-dev-deliver")[
            "Statement"
        ]
        if s.get("Sid") == "DedupeStore"
    ]
    assert statement["Resource"] == (
        "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/pixel-relay-dev-dedupe"
    )
    # The table the template describes is one the store's calls work on (moto).
    client = boto3.client("dynamodb", endpoint_url=moto_url)
    client.create_table(
        TableName=properties["TableName"],
        KeySchema=properties["KeySchema"],
        AttributeDefinitions=properties["AttributeDefinitions"],
        BillingMode=properties["BillingMode"],
    )
    try:
        from chalicelib.dedupe import DynamoDeliveryStore

        store = DynamoDeliveryStore(client, properties["TableName"], ttl_seconds=60)
        assert store.record("pinpoint", [("ep-1", "e-1")]) == 0
        assert store.seen("pinpoint", [("ep-1", "e-1")]) == {("ep-1", "e-1")}
    finally:
        client.delete_table(TableName=properties["TableName"])
