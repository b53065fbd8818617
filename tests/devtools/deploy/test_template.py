"""The CloudFormation deploy path: `chalice package --merge-template` for the dev stage, run
once per session, then checked as CloudFormation would see it (after the SAM transform) and
with cfn-lint."""

from __future__ import annotations

import importlib.util
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from devtools.deploy.bytecode import cache_name
from devtools.deploy.policies import consumer_policy, pixel_policy
from devtools.deploy.settings import DeploySettings, DeploySettingsError
from devtools.deploy.template import dashboard_body
from devtools.paths import ROOT
from devtools.queue_spec import QueueSpec, stage_environment
from tests.devtools.deploy_fixtures import Packaged

STAGE = "dev"


def resources_of(template: dict[str, Any], kind: str) -> dict[str, Any]:
    return {k: v for k, v in template["Resources"].items() if v.get("Type") == kind}


def test_cfn_lint_finds_nothing_in_the_package_or_the_transformed_template(
    packaged: Packaged,
) -> None:
    assert packaged.sam_lint == 0
    assert packaged.cloudformation_lint == 0


def test_the_event_source_mapping_reports_batch_item_failures_on_the_new_queue(
    packaged: Packaged,
) -> None:
    [mapping] = resources_of(packaged.cloudformation, "AWS::Lambda::EventSourceMapping").values()
    properties = mapping["Properties"]
    assert properties["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert properties["EventSourceArn"] == {"Fn::Sub": "${EventsQueue.Arn}"}
    assert properties["FunctionName"] == {"Ref": "Deliver"}
    assert properties["BatchSize"] == int(stage_environment(STAGE)["BATCH_SIZE"])


def test_queues_match_the_spec_every_environment_uses(packaged: Packaged) -> None:
    spec = QueueSpec.for_stage(STAGE)
    queues = packaged.cloudformation["Resources"]
    events = queues["EventsQueue"]["Properties"]
    dead_letters = queues["DeadLetterQueue"]["Properties"]
    assert events["QueueName"] == spec.events_queue
    assert dead_letters["QueueName"] == spec.dead_letter_queue
    assert events["RedrivePolicy"] == {
        "deadLetterTargetArn": {"Fn::GetAtt": ["DeadLetterQueue", "Arn"]},
        "maxReceiveCount": spec.max_receive_count,
    }
    assert events["SqsManagedSseEnabled"] is True
    assert dead_letters["SqsManagedSseEnabled"] is True
    assert dead_letters["MessageRetentionPeriod"] == 14 * 24 * 3600
    # The functions read the same names the template creates.
    for function in ("APIHandler", "Deliver"):
        variables = queues[function]["Properties"]["Environment"]["Variables"]
        assert variables["EVENTS_QUEUE"] == spec.events_queue
        assert variables["DEAD_LETTER_QUEUE"] == spec.dead_letter_queue


def test_visibility_timeout_is_at_least_six_times_the_consumers_timeout(
    packaged: Packaged,
) -> None:
    resources = packaged.cloudformation["Resources"]
    timeout = resources["Deliver"]["Properties"]["Timeout"]
    assert resources["EventsQueue"]["Properties"]["VisibilityTimeout"] >= 6 * timeout


def test_api_stage_is_throttled_as_deploy_settings_say(packaged: Packaged) -> None:
    settings = DeploySettings.for_stage(STAGE)
    [stage] = resources_of(packaged.cloudformation, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["MethodSettings"] == [
        {
            "ResourcePath": "/*",
            "HttpMethod": "*",
            "ThrottlingRateLimit": settings.throttling_rate_limit,
            "ThrottlingBurstLimit": settings.throttling_burst_limit,
        }
    ]


def test_every_response_is_binary_so_browsers_get_the_gif(packaged: Packaged) -> None:
    [api] = resources_of(packaged.cloudformation, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["Body"]["x-amazon-apigateway-binary-media-types"] == ["*/*"]


def test_both_functions_log_groups_expire(packaged: Packaged) -> None:
    days = DeploySettings.for_stage(STAGE).log_retention_days
    groups = resources_of(packaged.cloudformation, "AWS::Logs::LogGroup").values()
    assert sorted(g["Properties"]["LogGroupName"]["Fn::Sub"] for g in groups) == [
        "/aws/lambda/${APIHandler}",
        "/aws/lambda/${Deliver}",
    ]
    assert {g["Properties"]["RetentionInDays"] for g in groups} == {days}


def test_alarms_watch_the_dead_letter_queue_and_the_consumer(packaged: Packaged) -> None:
    settings = DeploySettings.for_stage(STAGE)
    alarms = {
        name: alarm["Properties"]
        for name, alarm in resources_of(packaged.cloudformation, "AWS::CloudWatch::Alarm").items()
    }
    dead_letters = alarms["DeadLetterQueueDepthAlarm"]
    assert (dead_letters["Namespace"], dead_letters["MetricName"]) == (
        "AWS/SQS",
        "ApproximateNumberOfMessagesVisible",
    )
    assert dead_letters["Dimensions"] == [
        {"Name": "QueueName", "Value": {"Fn::GetAtt": ["DeadLetterQueue", "QueueName"]}}
    ]
    assert dead_letters["Threshold"] == settings.dead_letter_alarm_threshold
    assert "devtools.ops dlq" in dead_letters["AlarmDescription"]
    errors = alarms["ConsumerErrorsAlarm"]
    assert (errors["Namespace"], errors["MetricName"]) == ("AWS/Lambda", "Errors")
    assert errors["Dimensions"] == [{"Name": "FunctionName", "Value": {"Ref": "Deliver"}}]
    assert errors["EvaluationPeriods"] == settings.consumer_errors_alarm_periods


def _counted_metrics() -> set[str]:
    """Metric names chalicelib actually emits."""
    source = "\n".join(p.read_text() for p in (ROOT / "chalicelib").rglob("*.py"))
    return set(re.findall(r"count(?:_by_reason)?\(\s*\"([A-Za-z]+)\"", source))


def test_dashboard_shows_the_pipeline_metrics_the_code_emits(packaged: Packaged) -> None:
    [dashboard] = resources_of(packaged.cloudformation, "AWS::CloudWatch::Dashboard").values()
    text = dashboard["Properties"]["DashboardBody"]["Fn::Sub"]
    body = json.loads(text)
    ours: set[str] = set()
    others: set[tuple[str, str]] = set()
    for widget in body["widgets"]:
        namespace = None
        for line in widget.get("properties", {}).get("metrics", []):
            if isinstance(line[0], dict):
                assert 'MetricName="HitsRefusedByReason"' in line[0]["expression"]
                assert "{PixelRelay,reason,service}" in line[0]["expression"]
                ours.add("HitsRefusedByReason")
                continue
            namespace = namespace if line[0] == "." else line[0]
            if namespace == "PixelRelay":
                assert line[2:4] == ["service", "pixel-relay"]
                ours.add(line[1])
            else:
                others.add((str(namespace), line[1] if line[1] != "." else ""))
    wanted = {
        "HitsAccepted",
        "HitsRefused",
        "HitsRefusedByReason",
        "EventsDelivered",
        "EventsRejected",
        "EventsRetried",
        "PutEventsCalls",
    }
    assert wanted <= ours
    assert ours <= _counted_metrics(), "the dashboard shows a metric nothing emits"
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in others
    assert ("AWS/Lambda", "Errors") in others
    assert "${DeadLetterQueue.QueueName}" in text
    assert "${Deliver}" in text


def test_dashboard_placeholders_all_resolve(packaged: Packaged) -> None:
    """Fn::Sub fails the whole stack on an unknown ${name}."""
    text = json.dumps(dashboard_body(STAGE))
    names = {match.split(".")[0] for match in re.findall(r"\$\{([^}]+)\}", text)}
    resources = set(packaged.cloudformation["Resources"])
    assert names - {"AWS::Region"} <= resources


def test_waf_is_optional_and_off_by_default(packaged: Packaged) -> None:
    template = packaged.cloudformation
    assert template["Parameters"]["EnableWaf"]["Default"] == "false"
    acl = template["Resources"]["WebAcl"]
    association = template["Resources"]["WebAclAssociation"]
    assert acl["Condition"] == association["Condition"] == "WafEnabled"
    rules = {rule["Name"]: rule for rule in acl["Properties"]["Rules"]}
    rate = rules["RateLimitPerIp"]["Statement"]["RateBasedStatement"]
    assert rate == {
        "Limit": DeploySettings.for_stage(STAGE).waf_rate_limit_per_5_minutes,
        "AggregateKeyType": "IP",
    }
    managed = {
        rule["Statement"]["ManagedRuleGroupStatement"]["Name"]
        for rule in rules.values()
        if "ManagedRuleGroupStatement" in rule["Statement"]
    }
    assert managed == {"AWSManagedRulesKnownBadInputsRuleSet", "AWSManagedRulesBotControlRuleSet"}
    arn = association["Properties"]["ResourceArn"]["Fn::Sub"]
    # SAM resolved ${RestAPI.Stage} to the stage it generated: the association waits for it.
    [stage_name] = resources_of(template, "AWS::ApiGateway::Stage")
    assert arn.endswith(f"/restapis/${{RestAPI}}/stages/${{{stage_name}}}")


def test_each_function_has_its_own_role_with_exactly_its_policy(packaged: Packaged) -> None:
    environment = stage_environment(STAGE)
    resources = packaged.cloudformation["Resources"]
    roles = resources_of(packaged.cloudformation, "AWS::IAM::Role")
    assert set(roles) == {"ApiHandlerRole", "DeliverRole"}
    assert resources["APIHandler"]["Properties"]["Role"] == {
        "Fn::GetAtt": ["ApiHandlerRole", "Arn"]
    }
    assert resources["Deliver"]["Properties"]["Role"] == {"Fn::GetAtt": ["DeliverRole", "Arn"]}
    [pixel] = roles["ApiHandlerRole"]["Properties"]["Policies"]
    [consumer] = roles["DeliverRole"]["Properties"]["Policies"]
    assert pixel["PolicyDocument"] == pixel_policy(environment)
    assert consumer["PolicyDocument"] == consumer_policy(environment)
    pixel_actions = {
        action
        for statement in pixel["PolicyDocument"]["Statement"]
        for action in statement["Action"]
        if not action.startswith("logs:")
    }
    assert pixel_actions == {"sqs:GetQueueUrl", "sqs:SendMessage"}
    for statement in consumer["PolicyDocument"]["Statement"]:
        resources_granted = statement["Resource"]
        for resource in (
            [resources_granted] if isinstance(resources_granted, str) else resources_granted
        ):
            assert resource != "*"
            assert not resource.endswith("apps/*")


def test_deploy_settings_name_the_stage_and_key_that_are_wrong(tmp_path: Path) -> None:
    (tmp_path / "deploy").mkdir()
    settings = json.loads((ROOT / "deploy" / "stages.json").read_text())
    settings["stages"]["dev"]["log_retention_days"] = 31
    (tmp_path / "deploy" / "stages.json").write_text(json.dumps(settings))
    with pytest.raises(DeploySettingsError, match="stage dev: log_retention_days must be one of"):
        DeploySettings.for_stage("dev", tmp_path)
    settings["stages"]["dev"] = {"throttle": 5}
    (tmp_path / "deploy" / "stages.json").write_text(json.dumps(settings))
    with pytest.raises(DeploySettingsError, match=r"unknown keys \['throttle'\]"):
        DeploySettings.for_stage("dev", tmp_path)


def test_every_chalice_stage_has_deploy_settings() -> None:
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    for stage in config["stages"]:
        DeploySettings.for_stage(stage)


def test_the_bundle_ships_bytecode_for_the_app_and_its_dependencies(packaged: Packaged) -> None:
    """Lambda's package directory is read-only: without these, every cold start compiles."""
    with zipfile.ZipFile(packaged.result.package_dir / "deployment.zip") as bundle:
        names = set(bundle.namelist())
        sources = [
            name
            for name in names
            if name.endswith(".py") and name.startswith(("app.py", "chalicelib/", "chalice/"))
        ]
        assert "chalicelib/pixel.py" in sources
        for source in sources:
            pyc = bundle.read(cache_name(source))
            assert pyc[8:16] == importlib.util.source_hash(bundle.read(source)), source
        assert cache_name("aws_lambda_powertools/__init__.py") in names


# Customer Profiles --------------------------------------------------------------------------


def _project_with(tmp_path: Path, **variables: str) -> Path:
    """A copy of the project whose dev stage sets `variables`."""
    from tests.devtools.deploy_fixtures import copy_project

    root = copy_project(tmp_path / "project")
    config_file = root / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    config["stages"][STAGE]["environment_variables"].update(variables)
    config_file.write_text(json.dumps(config))
    return root


def test_customer_profiles_resources_match_what_profiles_setup_sends_and_pass_cfn_lint(
    tmp_path: Path,
) -> None:
    from chalicelib.destinations.customer_profiles import Settings, object_type_definition
    from devtools.deploy.package import lint
    from devtools.deploy.profiles_setup import event_trigger_definition
    from devtools.deploy.template import merge_template

    root = _project_with(
        tmp_path,
        DESTINATIONS="customer-profiles",
        PROFILES_TRIGGER_EVENTS="purchase_success,sign-up,sign_up",
        ALLOWED_USER_ATTRIBUTES="plan",
    )
    template = merge_template(STAGE, root)
    settings = Settings.from_env(stage_environment(STAGE, root))
    domain = {"Fn::If": ["CreatesProfilesDomain", {"Ref": "ProfilesDomain"}, settings.domain]}

    [domain_resource] = resources_of(template, "AWS::CustomerProfiles::Domain").values()
    assert domain_resource["Condition"] == "CreatesProfilesDomain"
    assert domain_resource["DeletionPolicy"] == "Retain"
    assert domain_resource["Properties"]["DomainName"] == "pixel-relay-dev"
    assert template["Parameters"]["CreateProfilesDomain"]["Default"] == "true"

    [object_type] = resources_of(template, "AWS::CustomerProfiles::ObjectType").values()
    properties = object_type["Properties"]
    definition = object_type_definition(settings)
    assert properties["DomainName"] == domain
    assert properties["ObjectTypeName"] == "PixelRelayEvent"
    assert {f["Name"]: f["ObjectTypeField"] for f in properties["Fields"]} == definition["Fields"]
    assert {k["Name"]: k["ObjectTypeKeyList"] for k in properties["Keys"]} == definition["Keys"]
    assert "user.plan" in {f["Name"] for f in properties["Fields"]}

    triggers = resources_of(template, "AWS::CustomerProfiles::EventTrigger")
    # sign-up and sign_up are two triggers with two distinct logical ids.
    assert len(triggers) == 3
    by_name = {t["Properties"]["EventTriggerName"]: t for t in triggers.values()}
    for event in ("purchase_success", "sign-up", "sign_up"):
        trigger = by_name[f"pixel-relay-{event}"]
        assert trigger["DependsOn"] == "ProfilesObjectType"
        expected = {**event_trigger_definition(settings, event), "DomainName": domain}
        assert trigger["Properties"] == expected
        [condition] = trigger["Properties"]["EventTriggerConditions"]
        [dimension] = condition["EventTriggerDimensions"]
        assert dimension["ObjectAttributes"] == [
            {"FieldName": "event_type", "ComparisonOperator": "EQUAL", "Values": [event]}
        ]

    # cfn-lint on the Customer Profiles part alone (the rest refers to Chalice's resources).
    part = {
        "AWSTemplateFormatVersion": "2010-09-09",
        "Parameters": {"CreateProfilesDomain": template["Parameters"]["CreateProfilesDomain"]},
        "Conditions": {"CreatesProfilesDomain": template["Conditions"]["CreatesProfilesDomain"]},
        "Resources": {
            name: resource
            for name, resource in template["Resources"].items()
            if resource.get("Type", "").startswith("AWS::CustomerProfiles::")
        },
    }
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(part, indent=1))
    assert lint(path, root) == 0


def test_no_customer_profiles_resources_without_the_destination(tmp_path: Path) -> None:
    from devtools.deploy.template import merge_template

    root = _project_with(
        tmp_path, DESTINATIONS="pinpoint", PROFILES_TRIGGER_EVENTS="purchase_success"
    )
    template = merge_template(STAGE, root)
    assert not [
        r for r in template["Resources"].values() if "CustomerProfiles" in r.get("Type", "")
    ]
    assert "CreateProfilesDomain" not in template["Parameters"]


def test_a_bad_trigger_event_is_named_before_anything_is_packaged(tmp_path: Path) -> None:
    from chalicelib.config import ConfigError
    from devtools.deploy.template import merge_template

    root = _project_with(
        tmp_path, DESTINATIONS="customer-profiles", PROFILES_TRIGGER_EVENTS="add to cart"
    )
    with pytest.raises(ConfigError, match="PROFILES_TRIGGER_EVENTS: 'add to cart'"):
        merge_template(STAGE, root)
