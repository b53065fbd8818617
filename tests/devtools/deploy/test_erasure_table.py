"""A stage with erasure on (ERASURE_TABLE) gets the suppression list's table on both deploy
paths, the consumer may only read it, and the operator's `forget` gets a policy of its own;
a stage without it gets none of these."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.destinations.base import own_arn
from devtools.deploy import stage as deploy_stage
from devtools.deploy.erasure_table import ErasureTableError, ensure_erasure_table
from devtools.deploy.package import lint
from devtools.deploy.policies import consumer_policy
from devtools.deploy.template import merge_template
from devtools.offline import REGION
from devtools.queue_spec import chalice_config, stage_environment
from tests.devtools.deploy_fixtures import moto_clients

TABLE = "pixel-relay-dev-erasure"


def with_erasure(project: Path) -> Path:
    config_file = project / ".chalice" / "config.json"
    config = json.loads(config_file.read_text()) if config_file.exists() else chalice_config()
    config["stages"]["dev"]["environment_variables"]["ERASURE_TABLE"] = TABLE
    config_file.parent.mkdir(parents=True, exist_ok=True)
    config_file.write_text(json.dumps(config))
    return project


def test_nothing_of_erasure_without_the_setting() -> None:
    template = merge_template("dev")
    assert not {"ErasureTable", "ForgetPolicy"} & set(template["Resources"])
    assert "ForgetPolicyArn" not in template["Outputs"]
    sids = [s.get("Sid") for s in consumer_policy(stage_environment("dev"), "fn")["Statement"]]
    assert "ReadErasureList" not in sids


def test_the_stack_keeps_the_table_and_offers_the_operator_a_policy(
    project: Path, tmp_path: Path
) -> None:
    root = with_erasure(project)
    template = merge_template("dev", root)
    table = template["Resources"]["ErasureTable"]
    assert table["DeletionPolicy"] == table["UpdateReplacePolicy"] == "Retain"
    assert table["Properties"]["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert "TimeToLiveSpecification" not in table["Properties"]  # a forgotten id stays
    policy = template["Resources"]["ForgetPolicy"]["Properties"]
    statements = {s["Sid"]: s for s in policy["PolicyDocument"]["Statement"]}
    assert statements["WriteErasureList"]["Resource"] == {
        "Fn::Sub": own_arn("dynamodb", f"table/{TABLE}")
    }
    assert "ForgetProfiles" in statements  # the default destination's erasure_statements
    assert template["Outputs"]["ForgetPolicyArn"] == {"Value": {"Ref": "ForgetPolicy"}}
    # The consumer's role reads the list, and that is all it may do with it.
    [read] = [
        s
        for s in template["Resources"]["DeliverRole"]["Properties"]["Policies"][0][
            "PolicyDocument"
        ]["Statement"]
        if s["Sid"] == "ReadErasureList"
    ]
    assert read["Action"] == ["dynamodb:BatchGetItem"]
    # cfn-lint knows the resource types, the properties and the IAM actions.
    alone = tmp_path / "erasure.json"
    alone.write_text(
        json.dumps(
            {
                "AWSTemplateFormatVersion": "2010-09-09",
                "Resources": {
                    name: template["Resources"][name] for name in ("ErasureTable", "ForgetPolicy")
                },
                "Outputs": {"ForgetPolicyArn": template["Outputs"]["ForgetPolicyArn"]},
            }
        )
    )
    assert lint(alone) == 0


def test_make_deploy_creates_the_table_before_chalice_and_keeps_it_on_a_rerun(
    project: Path, moto: str, capsys: pytest.CaptureFixture[str]
) -> None:
    root = with_erasure(project)
    clients = moto_clients(moto)
    failing_chalice: Any = lambda arguments, root: 1  # noqa: E731 (a runner that fails)
    assert deploy_stage.deploy("dev", root, clients, failing_chalice) == 1
    dynamodb = boto3.client("dynamodb", endpoint_url=moto, region_name=REGION)
    described = dynamodb.describe_table(TableName=TABLE)["Table"]
    assert described["KeySchema"] == [{"AttributeName": "id", "KeyType": "HASH"}]
    assert described["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
    assert f"table {TABLE} (ERASURE_TABLE): created" in capsys.readouterr().out
    state = ensure_erasure_table(dynamodb, stage_environment("dev", root))
    assert state is not None
    assert state.action == "already as specified"


def test_a_table_with_another_key_is_refused_naming_the_setting(moto: str) -> None:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto, region_name=REGION)
    dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    with pytest.raises(ErasureTableError, match=f"ERASURE_TABLE {TABLE} exists with key"):
        ensure_erasure_table(dynamodb, {"ERASURE_TABLE": TABLE})
    assert ensure_erasure_table(dynamodb, {}) is None
