"""The CloudFormation deploy path: `chalice package --merge-template` for the dev stage, run
once per session, then checked as CloudFormation would see it (after the SAM transform) and
with cfn-lint."""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from chalicelib.destinations import registry
from devtools.deploy.bytecode import cache_name
from devtools.deploy.policies import (
    for_cloudformation,
    stage_policies,
)
from devtools.deploy.queues import ensure_queues, queue_problems
from devtools.deploy.settings import DeploySettings, DeploySettingsError
from devtools.deploy.template import dashboard_body, merge_template
from devtools.paths import ROOT
from devtools.queue_spec import KmsKey, QueueSpec, stage_environment
from tests.devtools.deploy_fixtures import Packaged, copy_project

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
    assert properties["FunctionName"] == {"Ref": "DeliverAliaslive"}  # the alias: rollback
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
    assert '`make ops ARGS="dlq --stage dev"`' in dead_letters["AlarmDescription"]
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
                assert "{PixelRelay,reason,service,stage}" in line[0]["expression"]
                assert 'stage="dev"' in line[0]["expression"]
                ours.add("HitsRefusedByReason")
                continue
            namespace = namespace if line[0] == "." else line[0]
            if namespace == "PixelRelay":
                assert line[2:6] == ["service", "pixel-relay", "stage", "dev"]
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
        "BatchPutProfileObjectCalls",  # the dev stage's destination: customer-profiles
    }
    assert wanted <= ours
    assert ours <= _counted_metrics(), "the dashboard shows a metric nothing emits"
    assert ("AWS/SQS", "ApproximateNumberOfMessagesVisible") in others
    assert ("AWS/Lambda", "Errors") in others
    assert "${DeadLetterQueue.QueueName}" in text
    assert "${Deliver}" in text


@pytest.mark.parametrize(
    "destinations", [("customer-profiles",), ("customer-profiles", "pinpoint")]
)
def test_the_dashboard_names_the_stages_destinations_and_their_calls(
    destinations: tuple[str, ...],
) -> None:
    """Before, its text said "events into Pinpoint" and it charted PutEvents calls on every
    stage."""
    body = dashboard_body(STAGE, [], destinations)
    text = body["widgets"][0]["properties"]["markdown"]
    assert f"events into {', '.join(destinations)}." in text
    [calls] = [
        w for w in body["widgets"] if w["properties"].get("title") == "Calls to the destinations"
    ]
    charted = [line[1] for line in calls["properties"]["metrics"]]
    assert charted == [registry.plugin(name).call_metric for name in destinations]
    assert set(charted) <= _counted_metrics()
    if "pinpoint" not in destinations:
        assert "Pinpoint" not in json.dumps(body)
        assert "PutEvents" not in json.dumps(body)


@pytest.mark.parametrize("name", registry.known())
def test_each_destination_names_the_metric_its_calls_are_counted_in(name: str) -> None:
    plugin = registry.plugin(name)
    module = Path(importlib.import_module(plugin.__module__).__file__ or "").parent
    sources = [Path(importlib.import_module(plugin.__module__).__file__ or "")]
    if module.name == name.replace("-", "_"):  # a package: every module of it
        sources = list(module.glob("*.py"))
    counted = "\n".join(path.read_text() for path in sources)
    assert f'count("{plugin.call_metric}"' in counted


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
    policies = stage_policies(STAGE, creates_log_group=False)
    resources = packaged.cloudformation["Resources"]
    roles = resources_of(packaged.cloudformation, "AWS::IAM::Role")
    assert set(roles) == {"ApiHandlerRole", "DeliverRole"}
    assert resources["APIHandler"]["Properties"]["Role"] == {
        "Fn::GetAtt": ["ApiHandlerRole", "Arn"]
    }
    assert resources["Deliver"]["Properties"]["Role"] == {"Fn::GetAtt": ["DeliverRole", "Arn"]}
    [pixel] = roles["ApiHandlerRole"]["Properties"]["Policies"]
    [consumer] = roles["DeliverRole"]["Properties"]["Policies"]
    assert pixel["PolicyDocument"] == for_cloudformation(policies["api_handler"])
    assert consumer["PolicyDocument"] == for_cloudformation(policies["deliver"])
    pixel_actions = {
        action
        for statement in pixel["PolicyDocument"]["Statement"]
        for action in statement["Action"]
        if not action.startswith("logs:")
    }
    # The template creates the log groups: Lambda may not (it would race the stack).
    assert "logs:CreateLogGroup" not in json.dumps(roles)
    assert pixel_actions == {"sqs:GetQueueUrl", "sqs:SendMessage"}
    for statement in consumer["PolicyDocument"]["Statement"]:
        resources_granted = statement["Resource"]
        for resource in (
            resources_granted if isinstance(resources_granted, list) else [resources_granted]
        ):
            text = resource["Fn::Sub"] if isinstance(resource, dict) else resource
            assert text != "*"
            assert not text.endswith("apps/*")


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


def test_the_bundle_ships_the_tags_script_as_served(packaged: Packaged) -> None:
    """GET /pixel-relay.js reads chalicelib/static/pixel-relay.js in Lambda: it must be there."""
    with zipfile.ZipFile(packaged.result.package_dir / "deployment.zip") as bundle:
        shipped = bundle.read("chalicelib/static/pixel-relay.js")
    assert shipped == (ROOT / "chalicelib" / "static" / "pixel-relay.js").read_bytes()


# Customer Profiles --------------------------------------------------------------------------


def _project_with(tmp_path: Path, **variables: str) -> Path:
    """A copy of the project whose dev stage sets `variables`."""
    root = copy_project(tmp_path / "project")
    config_file = root / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    config["stages"][STAGE]["environment_variables"].update(variables)
    config_file.write_text(json.dumps(config))
    return root


CAMPAIGN = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/3f6c0a1e-demo"


def test_customer_profiles_resources_match_what_profiles_setup_sends_and_pass_cfn_lint(
    tmp_path: Path,
) -> None:
    from chalicelib.destinations.customer_profiles.object_type import object_type_definition
    from chalicelib.destinations.customer_profiles.settings import Settings
    from devtools.deploy.package import lint
    from devtools.deploy.profiles_setup import event_trigger_definition
    from devtools.deploy.template import merge_template

    root = _project_with(
        tmp_path,
        DESTINATIONS="customer-profiles",
        PROFILES_TRIGGER_EVENTS="purchase_success,sign-up,sign_up",
        PROFILES_CAMPAIGNS=f"purchase_success={CAMPAIGN}",
        PROFILES_TRIGGER_MAX_STARTS="2",
        PROFILES_TRIGGER_PERIOD="12 HOURS",
        ALLOWED_USER_ATTRIBUTES="plan",
        SIGNED_USER_ATTRIBUTES="loyalty",
        TOKEN_JWKS_URL="https://id.example.com/.well-known/jwks.json",
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
    assert {"user.plan", "user.loyalty"} <= {f["Name"] for f in properties["Fields"]}
    assert (properties["ExpirationDays"], properties["MaxProfileObjectCount"]) == (365, 200)

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
        assert condition["LogicalOperator"] == "ALL"
        assert [d["ObjectAttributes"] for d in condition["EventTriggerDimensions"]] == [
            [{"FieldName": "event_type", "ComparisonOperator": "EQUAL", "Values": [event]}],
            [{"FieldName": "on_time", "ComparisonOperator": "EQUAL", "Values": ["true"]}],
        ]
        assert trigger["Properties"]["EventTriggerLimits"] == {
            "EventExpiration": 3_600_000,
            "Periods": [
                {"Unit": "HOURS", "Value": 12, "MaxInvocationsPerProfile": 2, "Unlimited": False}
            ],
        }

    # The campaign's link: the trigger's action, as PutIntegration would make it.
    [integration] = resources_of(template, "AWS::CustomerProfiles::Integration").values()
    assert integration["Properties"] == {
        "DomainName": domain,
        "Uri": CAMPAIGN,
        "EventTriggerNames": ["pixel-relay-purchase_success"],
    }
    trigger_ids = {t["Properties"]["EventTriggerName"]: n for n, t in triggers.items()}
    assert integration["DependsOn"] == trigger_ids["pixel-relay-purchase_success"]

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
    from chalicelib.env import ConfigError
    from devtools.deploy.template import merge_template

    root = _project_with(
        tmp_path, DESTINATIONS="customer-profiles", PROFILES_TRIGGER_EVENTS="add to cart"
    )
    with pytest.raises(ConfigError, match="PROFILES_TRIGGER_EVENTS: 'add to cart'"):
        merge_template(STAGE, root)


# Alarms, concurrency, retention, IAM (issue 14) -------------------------------------------


def _alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: alarm["Properties"]
        for name, alarm in resources_of(template, "AWS::CloudWatch::Alarm").items()
    }


def _metric(alarm: dict[str, Any]) -> tuple[str, str, list[dict[str, Any]]]:
    return alarm["Namespace"], alarm["MetricName"], alarm["Dimensions"]


OURS = [{"Name": "service", "Value": "pixel-relay"}, {"Name": "stage", "Value": STAGE}]


def test_every_way_of_losing_or_delaying_events_has_an_alarm(packaged: Packaged) -> None:
    settings = DeploySettings.for_stage(STAGE)
    alarms = _alarms(packaged.cloudformation)

    def function(logical_id: str) -> list[dict[str, Any]]:
        return [{"Name": "FunctionName", "Value": {"Ref": logical_id}}]

    def queue(logical_id: str) -> list[dict[str, Any]]:
        return [{"Name": "QueueName", "Value": {"Fn::GetAtt": [logical_id, "QueueName"]}}]

    expected = {
        "Api5xxAlarm": (
            "AWS/ApiGateway",
            "5XXError",
            [{"Name": "ApiName", "Value": "pixel-relay-dev"}, {"Name": "Stage", "Value": "api"}],
        ),
        "PixelErrorsAlarm": ("AWS/Lambda", "Errors", function("APIHandler")),
        "PixelThrottlesAlarm": ("AWS/Lambda", "Throttles", function("APIHandler")),
        "ConsumerThrottlesAlarm": ("AWS/Lambda", "Throttles", function("Deliver")),
        "ConsumerErrorsAlarm": ("AWS/Lambda", "Errors", function("Deliver")),
        "DeadLetterQueueDepthAlarm": (
            "AWS/SQS",
            "ApproximateNumberOfMessagesVisible",
            queue("DeadLetterQueue"),
        ),
        "DeadLetterQueueAgeAlarm": (
            "AWS/SQS",
            "ApproximateAgeOfOldestMessage",
            queue("DeadLetterQueue"),
        ),
        "EventsQueueAgeAlarm": ("AWS/SQS", "ApproximateAgeOfOldestMessage", queue("EventsQueue")),
        # Works with ReportBatchItemFailures on, where Lambda's Errors stay 0.
        "RetriedEventsAlarm": ("PixelRelay", "EventsRetried", OURS),
        "EnqueueFailuresAlarm": ("PixelRelay", "EnqueueFailures", OURS),
    }
    assert {name: _metric(alarm) for name, alarm in alarms.items()} == expected
    assert alarms["DeadLetterQueueAgeAlarm"]["Threshold"] == settings.dead_letter_age_alarm_seconds
    assert settings.dead_letter_age_alarm_seconds < 14 * 24 * 3600  # before SQS deletes them
    assert alarms["Api5xxAlarm"]["Threshold"] == settings.api_5xx_alarm_threshold
    assert alarms["RetriedEventsAlarm"]["Threshold"] == settings.retried_events_alarm_threshold
    assert alarms["PixelErrorsAlarm"]["Threshold"] == 1
    assert {alarm["AlarmName"] for alarm in alarms.values()} == {
        f"pixel-relay-dev-{suffix}"
        for suffix in (
            "api-5xx",
            "pixel-errors",
            "pixel-throttles",
            "consumer-throttles",
            "consumer-errors",
            "dead-letters",
            "dead-letter-age",
            "queue-age",
            "retried-events",
            "enqueue-failures",
        )
    }
    # Every alarm is on the dashboard.
    [dashboard] = resources_of(packaged.cloudformation, "AWS::CloudWatch::Dashboard").values()
    for name in alarms:
        assert f"${{{name}.Arn}}" in dashboard["Properties"]["DashboardBody"]["Fn::Sub"]


def test_the_api_is_named_for_its_stage_so_its_5xx_are_its_own(packaged: Packaged) -> None:
    [api] = resources_of(packaged.cloudformation, "AWS::ApiGateway::RestApi").values()
    assert api["Properties"]["Name"] == "pixel-relay-dev"
    assert api["Properties"]["Body"]["info"]["title"] == "pixel-relay-dev"
    [stage] = resources_of(packaged.cloudformation, "AWS::ApiGateway::Stage").values()
    assert stage["Properties"]["StageName"] == "api"


@pytest.fixture(scope="module")
def emf_documents() -> list[dict[str, Any]]:
    """What the deployed consumer prints for telemetry's counters, with the environment the
    template gives it (a fresh interpreter: the stage is read when telemetry is imported)."""
    resources = merge_template(STAGE)["Resources"]
    variables = resources["Deliver"]["Properties"]["Environment"]["Variables"]
    code = (
        "from chalicelib import telemetry\n"
        "telemetry.count('EventsRetried', 3)\n"
        "telemetry.count('EnqueueFailures')\n"
        "telemetry.publish()\n"
        "telemetry.count_by_reason('HitsRefusedByReason', 'too_long')\n"
    )
    environment = {**os.environ, "PIXEL_RELAY_STAGE": variables["PIXEL_RELAY_STAGE"]}
    environment.pop("POWERTOOLS_METRICS_NAMESPACE", None)  # the deployed functions have none
    out = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    return [json.loads(line) for line in out.splitlines() if '"_aws"' in line]


def _emf_dimensions(documents: list[dict[str, Any]], metric: str) -> list[dict[str, str]]:
    [document] = [d for d in documents if metric in d]
    [directive] = document["_aws"]["CloudWatchMetrics"]
    assert directive["Namespace"] == "PixelRelay"
    [names] = directive["Dimensions"]
    return sorted(({"Name": n, "Value": document[n]} for n in names), key=lambda d: d["Name"])


def test_alarms_on_our_metrics_use_the_dimensions_the_code_emits(
    packaged: Packaged, emf_documents: list[dict[str, Any]]
) -> None:
    """CloudWatch matches a metric on its whole dimension set: one missing `stage` and the
    alarm watches nothing."""
    alarms = _alarms(packaged.cloudformation)
    for name, metric in (
        ("RetriedEventsAlarm", "EventsRetried"),
        ("EnqueueFailuresAlarm", "EnqueueFailures"),
    ):
        wanted = sorted(alarms[name]["Dimensions"], key=lambda d: d["Name"])
        assert _emf_dimensions(emf_documents, metric) == wanted
    by_reason = _emf_dimensions(emf_documents, "HitsRefusedByReason")
    assert {"Name": "stage", "Value": STAGE} in by_reason


def test_the_consumer_is_told_the_mapping_reports_batch_item_failures(
    packaged: Packaged,
) -> None:
    resources = packaged.cloudformation["Resources"]
    deliver = resources["Deliver"]["Properties"]["Environment"]["Variables"]
    assert stage_environment(STAGE)["REPORT_BATCH_ITEM_FAILURES"] == "false"  # chalice deploy's
    assert deliver["REPORT_BATCH_ITEM_FAILURES"] == "true"
    [mapping] = resources_of(packaged.cloudformation, "AWS::Lambda::EventSourceMapping").values()
    assert mapping["Properties"]["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    for function in ("APIHandler", "Deliver"):
        variables = resources[function]["Properties"]["Environment"]["Variables"]
        assert variables["PIXEL_RELAY_STAGE"] == STAGE


def test_both_functions_publish_versions_behind_an_alias_the_api_and_the_mapping_invoke(
    packaged: Packaged,
) -> None:
    """Rollback on the stack path moves the alias `live` back (make rollback): for that the
    API and the mapping must invoke the alias, and old versions must be kept."""
    template = packaged.cloudformation
    aliases = resources_of(template, "AWS::Lambda::Alias")
    versions = resources_of(template, "AWS::Lambda::Version")
    assert sorted(aliases) == ["APIHandlerAliaslive", "DeliverAliaslive"]
    for function in ("APIHandler", "Deliver"):
        alias = aliases[f"{function}Aliaslive"]["Properties"]
        assert alias["Name"] == "live"
        assert alias["FunctionName"] == {"Ref": function}
        [version_id] = [
            name
            for name, version in versions.items()
            if version["Properties"]["FunctionName"] == {"Ref": function}
        ]
        assert alias["FunctionVersion"] == {"Fn::GetAtt": [version_id, "Version"]}
        version = versions[version_id]
        assert version["DeletionPolicy"] == "Retain"  # what a rollback goes back to
        assert version["Properties"]["Description"].startswith("pixel-relay dev ")
    body = json.dumps(template["Resources"]["RestAPI"]["Properties"]["Body"])
    assert body.count("${APIHandlerAliaslive}/invocations") == body.count("/invocations") > 0
    [permission] = resources_of(template, "AWS::Lambda::Permission").values()
    assert permission["Properties"]["FunctionName"] == {"Ref": "APIHandlerAliaslive"}


def test_the_consumer_cannot_take_the_pixels_concurrency(packaged: Packaged) -> None:
    resources = packaged.cloudformation["Resources"]
    [mapping] = resources_of(packaged.cloudformation, "AWS::Lambda::EventSourceMapping").values()
    assert "MAX_CONCURRENCY" not in stage_environment(STAGE)
    assert mapping["Properties"]["ScalingConfig"] == {"MaximumConcurrency": 5}
    reserved = resources["APIHandler"]["Properties"]["ReservedConcurrentExecutions"]
    assert reserved == {
        "Fn::If": [
            "HasPixelReservedConcurrency",
            {"Ref": "PixelReservedConcurrency"},
            {"Ref": "AWS::NoValue"},
        ]
    }
    assert packaged.cloudformation["Parameters"]["PixelReservedConcurrency"]["Default"] == "0"


def accepted(parameter: dict[str, Any], value: str) -> bool:
    """Whether CloudFormation takes `value` for the parameter (its Type and constraints)."""
    if parameter["Type"] == "Number":
        try:
            number = float(value)
        except ValueError:
            return False
        return bool(number >= parameter.get("MinValue", float("-inf")))
    pattern = parameter.get("AllowedPattern")
    return pattern is None or re.fullmatch(pattern, value) is not None


@pytest.mark.parametrize("value", ["0", "00", "0.0", "000", "+0", "50", "050", "5.0", "-1"])
def test_no_value_of_pixel_reserved_concurrency_reserves_zero(value: str) -> None:
    """Fn::Equals compares text: a Number parameter took "00" or "0.0", which does not equal
    "0", and the pixel got ReservedConcurrentExecutions 0, every hit throttled."""
    template = merge_template(STAGE)
    parameter = template["Parameters"]["PixelReservedConcurrency"]
    [[reference, zero]] = [
        condition["Fn::Not"][0]["Fn::Equals"]
        for name, condition in template["Conditions"].items()
        if name == "HasPixelReservedConcurrency"
    ]
    assert reference == {"Ref": "PixelReservedConcurrency"}
    if not accepted(parameter, value):
        return  # CloudFormation refuses the stack's parameters
    reserves = value != zero  # the condition, as CloudFormation evaluates it
    assert not (reserves and float(value) == 0), f"{value!r} reserves zero concurrency"
    assert reserves == (float(value) > 0)


def test_a_stage_max_concurrency_sets_the_mapping_cap(tmp_path: Path) -> None:
    root = _project_with(tmp_path, MAX_CONCURRENCY="20")
    event = merge_template(STAGE, root)["Resources"]["Deliver"]["Properties"]["Events"]
    assert event["DeliverSqsEventSource"]["Properties"]["ScalingConfig"] == {
        "MaximumConcurrency": 20
    }


def test_functions_have_the_names_chalice_deploy_gives_them(packaged: Packaged) -> None:
    resources = packaged.cloudformation["Resources"]
    assert resources["APIHandler"]["Properties"]["FunctionName"] == "pixel-relay-dev"
    assert resources["Deliver"]["Properties"]["FunctionName"] == "pixel-relay-dev-deliver"


def test_both_queues_are_kept_when_the_stack_goes(packaged: Packaged) -> None:
    resources = packaged.cloudformation["Resources"]
    for queue in ("DeadLetterQueue", "EventsQueue"):
        assert resources[queue]["DeletionPolicy"] == "Retain"
        assert resources[queue]["UpdateReplacePolicy"] == "Retain"


def _strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from _strings(item)


def test_no_arn_wildcards_partition_region_or_account(packaged: Packaged) -> None:
    template = packaged.cloudformation
    for text in _strings(template):
        assert not re.search(r"arn:\*|arn:[^:]*:[^:]*:\*:|:\*:\*:", text), text
    for role in resources_of(template, "AWS::IAM::Role").values():
        [policy] = role["Properties"]["Policies"]
        for statement in policy["PolicyDocument"]["Statement"]:
            granted = statement["Resource"]
            for resource in granted if isinstance(granted, list) else [granted]:
                if isinstance(resource, str):  # given as a concrete ARN (a key, a bus)
                    assert re.match(r"arn:aws[a-z-]*:[a-z0-9-]+:[a-z0-9-]+:\d{12}:", resource)
                    continue
                [text] = resource.values()
                assert text.startswith("arn:${AWS::Partition}:"), text
                assert ":${AWS::Region}:${AWS::AccountId}:" in text, text


def test_each_function_writes_only_its_own_log_group(packaged: Packaged) -> None:
    roles = resources_of(packaged.cloudformation, "AWS::IAM::Role")
    for role, function in (
        ("ApiHandlerRole", "pixel-relay-dev"),
        ("DeliverRole", "pixel-relay-dev-deliver"),
    ):
        [policy] = roles[role]["Properties"]["Policies"]
        [logs] = [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "WriteOwnLogs"]
        assert logs["Action"] == ["logs:CreateLogStream", "logs:PutLogEvents"]
        assert logs["Resource"] == {
            "Fn::Sub": "arn:${AWS::Partition}:logs:${AWS::Region}:${AWS::AccountId}"
            f":log-group:/aws/lambda/{function}:*"
        }


# Customer managed KMS key -------------------------------------------------------------------

KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"


def test_a_queue_key_encrypts_both_queues_and_both_roles_may_use_it(tmp_path: Path) -> None:
    root = _project_with(tmp_path, QUEUE_KMS_KEY=KEY)
    resources = merge_template(STAGE, root)["Resources"]
    for queue in ("DeadLetterQueue", "EventsQueue"):
        properties = resources[queue]["Properties"]
        assert properties["KmsMasterKeyId"] == KEY
        # One server-side encryption per queue: a stack moving from SSE-SQS turns it off.
        assert properties["SqsManagedSseEnabled"] is False
    for role in ("ApiHandlerRole", "DeliverRole"):
        [policy] = resources[role]["Properties"]["Policies"]
        [kms] = [s for s in policy["PolicyDocument"]["Statement"] if s["Sid"] == "UseQueueKey"]
        assert kms["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert kms["Resource"] == KEY
    # What verify compares the deployed queues with (deploy_stage's path).
    spec = QueueSpec.for_stage(STAGE, root)
    assert spec.dead_letter_attributes()["KmsMasterKeyId"] == KEY
    assert "SqsManagedSseEnabled" not in spec.events_attributes("arn:dlq")


def test_verify_expects_the_queue_key_and_sees_a_queue_without_it(sqs: Any) -> None:
    """The attributes `deploy_stage` creates and `verify` compares (moto's SQS keeps
    KmsMasterKeyId as set; it does not call KMS)."""
    plain = QueueSpec("pixel-relay-kms-events", "pixel-relay-kms-dlq", 360)
    ensure_queues(sqs, plain)
    key = KmsKey.parse(KEY)
    keyed = QueueSpec("pixel-relay-kms-events", "pixel-relay-kms-dlq", 360, kms_key=key)
    assert sorted(queue_problems(sqs, keyed)) == [
        f"pixel-relay-kms-dlq: KmsMasterKeyId is None, want {KEY!r}",
        "pixel-relay-kms-dlq: SqsManagedSseEnabled is 'true', want 'false'",
        f"pixel-relay-kms-events: KmsMasterKeyId is None, want {KEY!r}",
        "pixel-relay-kms-events: SqsManagedSseEnabled is 'true', want 'false'",
    ]
    events, dead_letters = ensure_queues(sqs, keyed)
    assert events.changed == dead_letters.changed == ("KmsMasterKeyId", "SqsManagedSseEnabled")
    assert queue_problems(sqs, keyed) == []
    for state in (events, dead_letters):
        attributes = sqs.get_queue_attributes(QueueUrl=state.url, AttributeNames=["All"])
        # Before, SSE-SQS stayed on beside the key ("only one server-side encryption option
        # is supported per queue", SetQueueAttributes).
        assert attributes["Attributes"]["SqsManagedSseEnabled"] == "false"
        assert attributes["Attributes"]["KmsMasterKeyId"] == KEY
