"""The CloudFormation that `chalice package --merge-template` adds to Chalice's own template.

Chalice creates the API, both functions, their roles and the SQS event source, but no queue,
alarm or dashboard, and it cannot turn on partial batch responses (DESIGN.md). This module
builds the rest for one stage, from the same sources everything else reads:
`devtools.queue_spec` (queue names and attributes, as `make dev` and `deploy_stage` create
them) and `deploy/stages.json` (throttling, retention, thresholds). The queue names differ per
stage, so the merge template is generated, never hand-copied.

Logical ids that Chalice generates and this template merges into: `Deliver` (the consumer),
`DeliverSqsEventSource` (its SQS event), `APIHandler` (the pixel), `RestAPI`, and the roles
`ApiHandlerRole` and `DeliverRole`, whose policies are replaced by the same policies as
`make policies` writes, with every ARN in the stack's own partition, region and account.

The functions get the names `chalice deploy` gives them (`pixel-relay-<stage>`,
`pixel-relay-<stage>-deliver`): their log groups, and so their log permissions, are known
before they exist, and `verify` and `ops check` find them by name on either path.

Each configured destination may add its own resources, parameters and conditions: its
plug-in names a `resources` hook (Customer Profiles': `devtools.deploy.profiles_template`,
the object type, event triggers and domain `make profiles-setup` would create).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Final

from chalicelib.config import QueueWiring
from chalicelib.destinations import registry
from chalicelib.erasure import TABLE_VARIABLE as ERASURE_TABLE
from chalicelib.queue import SQS_MESSAGE_BYTES
from devtools import hooks
from devtools.deploy.policies import (
    for_cloudformation,
    forget_policy,
    function_name,
    stage_policies,
)
from devtools.deploy.settings import DeploySettings
from devtools.paths import ROOT
from devtools.queue_spec import (
    DEAD_LETTER_RETENTION_SECONDS,
    EVENTS_RETENTION_SECONDS,
    QueueSpec,
    chalice_config,
    stage_environment,
)

NAMESPACE: Final = "PixelRelay"  # chalicelib.telemetry.NAMESPACE
SERVICE: Final = "pixel-relay"  # chalicelib.telemetry.SERVICE: the `service` dimension
CONSUMER: Final = "Deliver"
CONSUMER_EVENT: Final = "DeliverSqsEventSource"
PIXEL: Final = "APIHandler"
PIXEL_PERMISSION: Final = "APIHandlerInvokePermission"  # API Gateway's, on the pixel
# The alias the API and the mapping invoke (SAM's AutoPublishAlias; `make rollback` moves it).
LIVE_ALIAS: Final = "live"
# The logical id SAM gives the alias it generates: "<function's logical id>Alias<alias name>"
# (AWS SAM, AutoPublishAlias's generated resources).
PIXEL_ALIAS: Final = f"{PIXEL}Alias{LIVE_ALIAS}"
API: Final = "RestAPI"
ROLES: Final = {"api_handler": "ApiHandlerRole", "deliver": "DeliverRole"}
# The `stage` dimension of every PixelRelay metric (chalicelib.telemetry.STAGE_VARIABLE).
STAGE_VARIABLE: Final = "PIXEL_RELAY_STAGE"
PERIOD_SECONDS: Final = 300
# PixelReservedConcurrency: 0 (none) or a whole number written one way only, so that the
# condition's comparison with "0" is exact.
RESERVED_CONCURRENCY_PATTERN: Final = "^(0|[1-9][0-9]{0,5})$"
# Bot Control's common level; its own price applies (see docs/deploy.md).
BOT_RULE_GROUP: Final = "AWSManagedRulesBotControlRuleSet"
KNOWN_BAD_INPUTS_RULE_GROUP: Final = "AWSManagedRulesKnownBadInputsRuleSet"
PIXEL_METRICS: Final = ("HitsAccepted", "HitsRefused", "EnqueueFailures", "PixelErrors")
CONSUMER_METRICS: Final = (
    "EventsDelivered",
    "EventsRejected",
    "EventsRetried",
    "ProfileUpdatesParked",
)


def _sub(text: str) -> dict[str, str]:
    return {"Fn::Sub": text}


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


def _get_att(resource: str, attribute: str) -> dict[str, list[str]]:
    return {"Fn::GetAtt": [resource, attribute]}


def _alarm_actions() -> dict[str, Any]:
    return {"Fn::If": ["HasAlarmTopic", [_ref("AlarmTopicArn")], _ref("AWS::NoValue")]}


def api_stage_name(stage: str, root: Path = ROOT) -> str:
    """The API Gateway stage Chalice deploys to (`api_gateway_stage`, default `api`)."""
    config = chalice_config(root)
    stage_config = config.get("stages", {}).get(stage, {})
    return str(stage_config.get("api_gateway_stage", config.get("api_gateway_stage", "api")))


def merge_template(stage: str, root: Path = ROOT) -> dict[str, Any]:
    """Everything Chalice's template lacks for `stage`, as one CloudFormation fragment."""
    spec = QueueSpec.for_stage(stage, root)
    settings = DeploySettings.for_stage(stage, root)
    environment = stage_environment(stage, root)
    resources: dict[str, Any] = {}
    resources.update(_queues(spec))
    resources.update(_function_overrides(stage, environment, root))
    resources.update(_roles(stage, root))
    resources.update(_api_overrides(stage, settings))
    resources.update(_log_groups(settings))
    alarms = _alarms(stage, spec, settings, root)
    resources.update(alarms)
    resources["Dashboard"] = {
        "Type": "AWS::CloudWatch::Dashboard",
        "Properties": {
            "DashboardName": _sub(f"pixel-relay-{stage}-${{AWS::Region}}"),
            "DashboardBody": _sub(
                json.dumps(
                    dashboard_body(stage, sorted(alarms), registry.configured_names(environment)),
                    separators=(",", ":"),
                )
            ),
        },
    }
    resources.update(_waf(stage, settings))
    resources.update(_dedupe_table(environment))
    resources.update(_erasure(stage, environment))
    added = destination_fragments(environment)
    resources.update(added["Resources"])
    return {
        "Parameters": {
            **added["Parameters"],
            "EnableWaf": {
                "Type": "String",
                "AllowedValues": ["true", "false"],
                "Default": "false",
                "Description": "Put an AWS WAF web ACL in front of the API stage (per-IP rate"
                " limit, known bad inputs, bot control). Billed per web ACL, rule and request.",
            },
            "WafBotControlAction": {
                "Type": "String",
                "AllowedValues": ["count", "block"],
                "Default": "count",
                "Description": "count: Bot Control only labels and counts (watch it first);"
                " block: it blocks what it judges to be bots.",
            },
            "AlarmTopicArn": {
                "Type": "String",
                "Default": "",
                "Description": "SNS topic ARN notified when an alarm fires; empty for none.",
            },
            # A String with a pattern, not a Number: Fn::Equals compares text, and a Number
            # parameter takes "00" or "0.0", which would not equal "0" and reserve zero
            # concurrency, throttling every hit.
            "PixelReservedConcurrency": {
                "Type": "String",
                "Default": "0",
                "AllowedPattern": RESERVED_CONCURRENCY_PATTERN,
                "ConstraintDescription": "a whole number without leading zeros (0 for none)",
                "Description": "Concurrency reserved for the pixel (and its ceiling); 0 for"
                " none, the account's unreserved pool. The consumer is capped by its"
                " mapping's MaximumConcurrency either way.",
            },
        },
        "Conditions": {
            "WafEnabled": {"Fn::Equals": [_ref("EnableWaf"), "true"]},
            "WafBotBlocks": {"Fn::Equals": [_ref("WafBotControlAction"), "block"]},
            "HasAlarmTopic": {"Fn::Not": [{"Fn::Equals": [_ref("AlarmTopicArn"), ""]}]},
            **added["Conditions"],
            "HasPixelReservedConcurrency": {
                "Fn::Not": [{"Fn::Equals": [_ref("PixelReservedConcurrency"), "0"]}]
            },
        },
        "Resources": resources,
        "Outputs": {
            "EventsQueueUrl": {"Value": _ref("EventsQueue")},
            "DeadLetterQueueUrl": {"Value": _ref("DeadLetterQueue")},
            "DashboardUrl": {
                "Value": _sub(
                    "https://${AWS::Region}.console.${AWS::URLSuffix}/cloudwatch/home"
                    "?region=${AWS::Region}#dashboards:name=${Dashboard}"
                )
            },
            "WebAclArn": {"Condition": "WafEnabled", "Value": _get_att("WebAcl", "Arn")},
            **_erasure_outputs(environment),
        },
    }


def _encryption(spec: QueueSpec) -> dict[str, Any]:
    """The stage's KMS key (QUEUE_KMS_KEY), else SQS-managed keys (the two exclude each
    other), as `QueueSpec.encryption_attributes` says for the `chalice deploy` path."""
    if spec.kms_key is not None:
        # Explicit: a queue has one server-side encryption, and a stack that moves a queue
        # from SSE-SQS to the key must turn SSE-SQS off (devtools/deploy/queues.py).
        return {"KmsMasterKeyId": spec.kms_key.arn, "SqsManagedSseEnabled": False}
    return {"SqsManagedSseEnabled": True}


def _queues(spec: QueueSpec) -> dict[str, Any]:
    """The same queues `deploy_stage` and `make dev` create, as CloudFormation.

    Both are kept when the stack is deleted or a change would replace them: the dead-letter
    queue holds the only copy of undelivered events, and the events queue the events not
    delivered yet. Delete them by hand once drained (docs/deploy.md).
    """
    kept = {"DeletionPolicy": "Retain", "UpdateReplacePolicy": "Retain"}
    return {
        "DeadLetterQueue": {
            "Type": "AWS::SQS::Queue",
            **kept,
            "Properties": {
                "QueueName": spec.dead_letter_queue,
                "MessageRetentionPeriod": DEAD_LETTER_RETENTION_SECONDS,
                "MaximumMessageSize": SQS_MESSAGE_BYTES,
                **_encryption(spec),
            },
        },
        "EventsQueue": {
            "Type": "AWS::SQS::Queue",
            **kept,
            "Properties": {
                "QueueName": spec.events_queue,
                "VisibilityTimeout": spec.visibility_timeout_seconds,
                "MessageRetentionPeriod": EVENTS_RETENTION_SECONDS,
                "MaximumMessageSize": SQS_MESSAGE_BYTES,
                **_encryption(spec),
                "RedrivePolicy": {
                    "deadLetterTargetArn": _get_att("DeadLetterQueue", "Arn"),
                    "maxReceiveCount": spec.max_receive_count,
                },
            },
        },
    }


def _dedupe_table(environment: dict[str, str]) -> dict[str, Any]:
    """The shared dedupe store, when the stage names one (DEDUPE_TABLE): on-demand, items
    expiring through TTL on `expires_at` (chalicelib/dedupe.py). Retained when the stack is
    deleted, like data; it holds only digests."""
    table = environment.get("DEDUPE_TABLE", "").strip()
    if not table:
        return {}
    return {
        "DedupeTable": _kept_id_table(
            table, {"TimeToLiveSpecification": {"AttributeName": "expires_at", "Enabled": True}}
        )
    }


def _kept_id_table(name: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    """A DynamoDB table keyed by the string `id`, on demand, kept when the stack is deleted
    or the resource replaced; encrypted at rest with DynamoDB's own key (the default, no KMS
    charge)."""
    return {
        "Type": "AWS::DynamoDB::Table",
        "DeletionPolicy": "Retain",
        "UpdateReplacePolicy": "Retain",
        "Properties": {
            "TableName": name,
            "BillingMode": "PAY_PER_REQUEST",
            "AttributeDefinitions": [{"AttributeName": "id", "AttributeType": "S"}],
            "KeySchema": [{"AttributeName": "id", "KeyType": "HASH"}],
            **(extra or {}),
        },
    }


def _erasure(stage: str, environment: dict[str, str]) -> dict[str, Any]:
    """With erasure on (ERASURE_TABLE): the suppression list, which the consumer's role may
    read (`make policies`' statement), and a managed policy for the operators who run
    `make ops ARGS="forget ..."`, to attach to their own role or user. The table is kept
    when the stack is deleted: without it, a forgotten visitor's replayed events would be
    delivered again. It holds digests, never an id."""
    table = environment.get(ERASURE_TABLE, "").strip()
    if not table:
        return {}
    return {
        "ErasureTable": _kept_id_table(table),
        "ForgetPolicy": {
            "Type": "AWS::IAM::ManagedPolicy",
            "Properties": {
                # IAM is global: the region keeps two stacks of one stage apart.
                "ManagedPolicyName": _sub(f"pixel-relay-{stage}-forget-${{AWS::Region}}"),
                "Description": f'make ops ARGS="forget --stage {stage} ...": erasure of a visitor',
                "PolicyDocument": for_cloudformation(forget_policy(environment)),
            },
        },
    }


def _erasure_outputs(environment: dict[str, str]) -> dict[str, Any]:
    if not environment.get(ERASURE_TABLE, "").strip():
        return {}
    return {"ForgetPolicyArn": {"Value": _ref("ForgetPolicy")}}


# What destinations add ---------------------------------------------------------------------

FRAGMENT_SECTIONS: Final = ("Parameters", "Conditions", "Resources")


def destination_fragments(environment: dict[str, str]) -> dict[str, dict[str, Any]]:
    """The CloudFormation each configured destination's plug-in declares (its `resources`
    hook: environment -> {"Parameters", "Conditions", "Resources"}), merged in the
    registry's order. A logical id declared twice is an error naming both destinations."""
    merged: dict[str, dict[str, Any]] = {section: {} for section in FRAGMENT_SECTIONS}
    owners: dict[tuple[str, str], str] = {}
    for name in registry.configured_names(environment):
        hook = registry.plugin(name).resources
        if hook is None:
            continue
        fragment: dict[str, Any] = hooks.attribute(hook, name)(environment)
        unknown = set(fragment) - set(FRAGMENT_SECTIONS)
        if unknown:
            raise ValueError(f"{name}: {hook} returned unknown sections {sorted(unknown)}")
        for section in FRAGMENT_SECTIONS:
            for logical_id, value in fragment.get(section, {}).items():
                earlier = owners.setdefault((section, logical_id), name)
                if earlier != name:
                    raise ValueError(f"{section} {logical_id}: declared by {earlier} and {name}")
                merged[section][logical_id] = value
    return merged


def consumer_max_concurrency(environment: dict[str, str]) -> int:
    """The consumer mapping's MaximumConcurrency: MAX_CONCURRENCY, else the default (5), the
    same as the `chalice deploy` path's (chalicelib.config.DEFAULT_MAX_CONCURRENCY)."""
    return QueueWiring.from_env(environment).maximum_concurrency


def _function_overrides(stage: str, environment: dict[str, str], root: Path) -> dict[str, Any]:
    """Partial batch responses on (and the consumer told so), the event source bound to the
    queue made here and capped, the functions named, the stage for the metrics, and each
    function published as a version behind the alias `live` (`published`).

    Chalice's `Queue` is an `Fn::Sub` of the queue's name; it is replaced by an `Fn::Sub` of
    the new queue's ARN (mixing `Fn::GetAtt` into the generated `Fn::Sub` is invalid), which
    also makes CloudFormation create the queue before the mapping.
    """
    versions = published(stage, root)
    return {
        PIXEL_PERMISSION: {"Properties": {"FunctionName": _ref(PIXEL_ALIAS)}},
        CONSUMER: {
            "Properties": {
                **versions,
                "FunctionName": function_name(stage, "deliver", root),
                "Environment": {
                    "Variables": {
                        # The mapping below reports batch item failures: the consumer must
                        # answer with them (chalicelib.delivery), whatever config.json says.
                        "REPORT_BATCH_ITEM_FAILURES": "true",
                        STAGE_VARIABLE: stage,
                    }
                },
                "Events": {
                    CONSUMER_EVENT: {
                        "Properties": {
                            "Queue": _sub("${EventsQueue.Arn}"),
                            "FunctionResponseTypes": ["ReportBatchItemFailures"],
                            # Lambda's poller never runs more than this many at once (no
                            # throttling, unlike reserved concurrency): a replay cannot take
                            # the account's concurrency from the pixel.
                            "ScalingConfig": {
                                "MaximumConcurrency": consumer_max_concurrency(environment)
                            },
                        }
                    }
                },
            }
        },
        PIXEL: {
            "Properties": {
                **versions,
                "FunctionName": function_name(stage, "api_handler", root),
                "Environment": {"Variables": {STAGE_VARIABLE: stage}},
                "ReservedConcurrentExecutions": {
                    "Fn::If": [
                        "HasPixelReservedConcurrency",
                        _ref("PixelReservedConcurrency"),
                        _ref("AWS::NoValue"),
                    ]
                },
            }
        },
    }


def published(stage: str, root: Path) -> dict[str, Any]:
    """SAM's versions and alias for a function: every deploy that changes it (code or any
    property: AutoPublishAliasAllProperties) publishes a version, and the alias `live`, which
    the API and the mapping invoke, moves to it. Old versions are kept (SAM's default
    DeletionPolicy for them is Retain), so `make rollback` moves the alias back in seconds.
    Each version's description names the commit it was packaged from, for
    `make rollback COMMIT=...`."""
    return {
        "AutoPublishAlias": LIVE_ALIAS,
        "AutoPublishAliasAllProperties": True,
        "VersionDescription": f"pixel-relay {stage} {source_commit(root)}",
    }


def source_commit(root: Path) -> str:
    """The commit `root` is checked out at (`-dirty` with uncommitted changes), or "unknown"
    outside a git checkout."""
    import subprocess

    try:
        found = subprocess.run(
            ["git", "describe", "--always", "--dirty", "--abbrev=12", "--exclude", "*"],
            cwd=root,
            capture_output=True,
            text=True,
            check=False,
        )
    except OSError:
        return "unknown"
    return found.stdout.strip() if found.returncode == 0 and found.stdout.strip() else "unknown"


def point_api_at_alias(sam: dict[str, Any]) -> dict[str, Any]:
    """Chalice's API integrations invoke the pixel function itself (`${APIHandler.Arn}` in the
    swagger's `uri`s); they are made to invoke its alias, so a rollback of the alias reaches
    the API. Applied to `chalice package`'s template, whose routes the merge template cannot
    know."""
    api = sam["Resources"][API]["Properties"]["DefinitionBody"]
    for methods in api.get("paths", {}).values():
        for operation in methods.values():
            uri = operation.get("x-amazon-apigateway-integration", {}).get("uri", {})
            if isinstance(uri, dict) and "Fn::Sub" in uri and isinstance(uri["Fn::Sub"], str):
                uri["Fn::Sub"] = uri["Fn::Sub"].replace(f"${{{PIXEL}.Arn}}", f"${{{PIXEL_ALIAS}}}")
    return sam


def _roles(stage: str, root: Path) -> dict[str, Any]:
    """Each role's one inline policy, as `make policies` builds it, with the stack's own
    partition, region and account in every ARN. The template creates the log groups, so the
    functions may not (CreateLogGroup would race the stack)."""
    policies = stage_policies(stage, root, creates_log_group=False)
    return {
        role: {
            "Properties": {
                "Policies": [
                    {
                        "PolicyName": f"{role}Policy",
                        "PolicyDocument": for_cloudformation(policies[function]),
                    }
                ]
            }
        }
        for function, role in ROLES.items()
    }


def api_name(stage: str) -> str:
    """The REST API's name, and so its `ApiName` metric dimension: one per stage, so one
    stage's 5XX alarm never counts another's."""
    return f"pixel-relay-{stage}"


def _api_overrides(stage: str, settings: DeploySettings) -> dict[str, Any]:
    """Stage-wide throttling (Chalice has no setting for it) and a name of the stage's own."""
    name = api_name(stage)
    return {
        API: {
            "Properties": {
                "Name": name,
                "DefinitionBody": {"info": {"title": name}},
                "MethodSettings": [
                    {
                        "ResourcePath": "/*",
                        "HttpMethod": "*",
                        "ThrottlingRateLimit": settings.throttling_rate_limit,
                        "ThrottlingBurstLimit": settings.throttling_burst_limit,
                    }
                ],
            }
        }
    }


def _log_groups(settings: DeploySettings) -> dict[str, Any]:
    """Lambda's own log groups never expire; these are created first, with a retention."""
    return {
        f"{function}LogGroup": {
            "Type": "AWS::Logs::LogGroup",
            "Properties": {
                "LogGroupName": _sub(f"/aws/lambda/${{{function}}}"),
                "RetentionInDays": settings.log_retention_days,
            },
        }
        for function in (PIXEL, CONSUMER)
    }


def _alarm(description: str, **properties: Any) -> dict[str, Any]:
    return {
        "Type": "AWS::CloudWatch::Alarm",
        "Properties": {
            "AlarmDescription": description,
            "AlarmActions": _alarm_actions(),
            "OKActions": _alarm_actions(),
            "Period": PERIOD_SECONDS,
            "ComparisonOperator": "GreaterThanOrEqualToThreshold",
            "TreatMissingData": "notBreaching",
            **properties,
        },
    }


def ours_dimensions(stage: str) -> list[dict[str, str]]:
    """The dimensions every PixelRelay counter carries (chalicelib.telemetry)."""
    return [{"Name": "service", "Value": SERVICE}, {"Name": "stage", "Value": stage}]


def _alarms(
    stage: str, spec: QueueSpec, settings: DeploySettings, root: Path = ROOT
) -> dict[str, Any]:
    """One alarm per way the stage loses or delays events; each description says what it
    means and where to start (docs/operations.md has the runbook)."""
    ops = f'make ops ARGS="dlq --stage {stage}"'
    runbook = "Runbook: docs/operations.md."

    def lambda_metric(function: str, metric: str) -> dict[str, Any]:
        return {
            "Namespace": "AWS/Lambda",
            "MetricName": metric,
            "Dimensions": [{"Name": "FunctionName", "Value": _ref(function)}],
            "Statistic": "Sum",
        }

    def queue_metric(queue: str, metric: str) -> dict[str, Any]:
        return {
            "Namespace": "AWS/SQS",
            "MetricName": metric,
            "Dimensions": [{"Name": "QueueName", "Value": _get_att(queue, "QueueName")}],
            "Statistic": "Maximum",
        }

    return {
        "Api5xxAlarm": _alarm(
            "API Gateway answered 5XX to pixel hits: the pixel failed, was throttled, or SQS"
            " refused hits (503, see the enqueue-failures alarm). Browsers do not retry an"
            f" image: these events are lost. {runbook}",
            AlarmName=f"pixel-relay-{stage}-api-5xx",
            Namespace="AWS/ApiGateway",
            MetricName="5XXError",
            Dimensions=[
                {"Name": "ApiName", "Value": api_name(stage)},
                {"Name": "Stage", "Value": api_stage_name(stage, root)},
            ],
            Statistic="Sum",
            EvaluationPeriods=1,
            Threshold=settings.api_5xx_alarm_threshold,
        ),
        "PixelErrorsAlarm": _alarm(
            "The pixel function (api_handler) failed with an unhandled error or timeout: the"
            f" hit was answered 502 and lost. Read the pixel's log group. {runbook}",
            AlarmName=f"pixel-relay-{stage}-pixel-errors",
            **lambda_metric(PIXEL, "Errors"),
            EvaluationPeriods=1,
            Threshold=1,
        ),
        "PixelThrottlesAlarm": _alarm(
            "Lambda throttled the pixel: the account (or PixelReservedConcurrency) ran out"
            f" of concurrency and the hits were answered 5XX and lost. {runbook}",
            AlarmName=f"pixel-relay-{stage}-pixel-throttles",
            **lambda_metric(PIXEL, "Throttles"),
            EvaluationPeriods=1,
            Threshold=1,
        ),
        "ConsumerThrottlesAlarm": _alarm(
            "Lambda throttled the consumer (deliver): the account ran out of concurrency."
            " Events wait on the queue and come back later; the pixel may be throttled too."
            f" {runbook}",
            AlarmName=f"pixel-relay-{stage}-consumer-throttles",
            **lambda_metric(CONSUMER, "Throttles"),
            EvaluationPeriods=1,
            Threshold=1,
        ),
        "DeadLetterQueueDepthAlarm": _alarm(
            f"Messages are waiting on the dead-letter queue {spec.dead_letter_queue}: events"
            f" that were not delivered. Triage and replay with `{ops}` (docs/operations.md).",
            AlarmName=f"pixel-relay-{stage}-dead-letters",
            **queue_metric("DeadLetterQueue", "ApproximateNumberOfMessagesVisible"),
            EvaluationPeriods=1,
            Threshold=settings.dead_letter_alarm_threshold,
        ),
        "DeadLetterQueueAgeAlarm": _alarm(
            f"An event has waited on {spec.dead_letter_queue} for more than"
            f" {settings.dead_letter_age_alarm_seconds} s. SQS deletes it 14 days after it"
            f" was first queued: replay or export it before then with `{ops}`.",
            AlarmName=f"pixel-relay-{stage}-dead-letter-age",
            **queue_metric("DeadLetterQueue", "ApproximateAgeOfOldestMessage"),
            EvaluationPeriods=1,
            Threshold=settings.dead_letter_age_alarm_seconds,
        ),
        "ConsumerErrorsAlarm": _alarm(
            "The consumer (deliver) crashed or timed out: its whole batch comes back after"
            " the visibility timeout. Events a destination refused or throttled are not"
            " errors here (they are reported per item): see the retried-events alarm."
            f" {runbook}",
            AlarmName=f"pixel-relay-{stage}-consumer-errors",
            **lambda_metric(CONSUMER, "Errors"),
            EvaluationPeriods=settings.consumer_errors_alarm_periods,
            DatapointsToAlarm=settings.consumer_errors_alarm_periods,
            Threshold=settings.consumer_errors_alarm_threshold,
        ),
        "RetriedEventsAlarm": _alarm(
            "The consumer keeps sending events back for a retry (EventsRetried): a"
            " destination is failing or throttling. Read the 'events will be retried' log"
            f" lines for the reason. {runbook}",
            AlarmName=f"pixel-relay-{stage}-retried-events",
            Namespace=NAMESPACE,
            MetricName="EventsRetried",
            Dimensions=ours_dimensions(stage),
            Statistic="Sum",
            EvaluationPeriods=settings.consumer_errors_alarm_periods,
            DatapointsToAlarm=settings.consumer_errors_alarm_periods,
            Threshold=settings.retried_events_alarm_threshold,
        ),
        "EventsQueueAgeAlarm": _alarm(
            f"The oldest event on {spec.events_queue} is older than"
            f" {settings.queue_age_alarm_seconds} s: the consumer is not keeping up or not"
            " running (check the event source mapping is enabled).",
            AlarmName=f"pixel-relay-{stage}-queue-age",
            **queue_metric("EventsQueue", "ApproximateAgeOfOldestMessage"),
            EvaluationPeriods=1,
            Threshold=settings.queue_age_alarm_seconds,
        ),
        "EnqueueFailuresAlarm": _alarm(
            "The pixel answered 503: SQS did not take hits (EnqueueFailures). Browsers do not"
            " retry an image, so these events are lost.",
            AlarmName=f"pixel-relay-{stage}-enqueue-failures",
            Namespace=NAMESPACE,
            MetricName="EnqueueFailures",
            Dimensions=ours_dimensions(stage),
            Statistic="Sum",
            EvaluationPeriods=1,
            Threshold=settings.enqueue_failures_alarm_threshold,
        ),
    }


def _waf(stage: str, settings: DeploySettings) -> dict[str, Any]:
    """Optional (`EnableWaf`): a per-IP rate limit and two AWS managed rule groups."""

    def visibility(name: str) -> dict[str, Any]:
        return {
            "SampledRequestsEnabled": True,
            "CloudWatchMetricsEnabled": True,
            "MetricName": name,
        }

    def managed(name: str, priority: int, override: Any, **statement: Any) -> dict[str, Any]:
        return {
            "Name": name,
            "Priority": priority,
            "OverrideAction": override,
            "Statement": {
                "ManagedRuleGroupStatement": {"VendorName": "AWS", "Name": name, **statement}
            },
            "VisibilityConfig": visibility(name),
        }

    return {
        "WebAcl": {
            "Type": "AWS::WAFv2::WebACL",
            "Condition": "WafEnabled",
            "Properties": {
                "Name": f"pixel-relay-{stage}",
                "Scope": "REGIONAL",
                "DefaultAction": {"Allow": {}},
                "VisibilityConfig": visibility(f"pixel-relay-{stage}"),
                "Rules": [
                    {
                        "Name": "RateLimitPerIp",
                        "Priority": 0,
                        "Action": {"Block": {}},
                        "Statement": {
                            "RateBasedStatement": {
                                "Limit": settings.waf_rate_limit_per_5_minutes,
                                "AggregateKeyType": "IP",
                            }
                        },
                        "VisibilityConfig": visibility("RateLimitPerIp"),
                    },
                    managed(KNOWN_BAD_INPUTS_RULE_GROUP, 1, {"None": {}}),
                    managed(
                        BOT_RULE_GROUP,
                        2,
                        {"Fn::If": ["WafBotBlocks", {"None": {}}, {"Count": {}}]},
                        ManagedRuleGroupConfigs=[
                            {"AWSManagedRulesBotControlRuleSet": {"InspectionLevel": "COMMON"}}
                        ],
                    ),
                ],
            },
        },
        "WebAclAssociation": {
            "Type": "AWS::WAFv2::WebACLAssociation",
            "Condition": "WafEnabled",
            "Properties": {
                # ${RestAPI.Stage} is SAM's reference to the stage it generates, so the
                # association waits for the stage to exist.
                "ResourceArn": _sub(
                    "arn:${AWS::Partition}:apigateway:${AWS::Region}::/restapis/${RestAPI}"
                    "/stages/${RestAPI.Stage}"
                ),
                "WebACLArn": _get_att("WebAcl", "Arn"),
            },
        },
    }


# Dashboard --------------------------------------------------------------------------------


def _metric_widget(
    title: str,
    metrics: list[list[Any]],
    stat: str = "Sum",
    x: int = 0,
    y: int = 0,
    width: int = 12,
) -> dict[str, Any]:
    return {
        "type": "metric",
        "x": x,
        "y": y,
        "width": width,
        "height": 6,
        "properties": {
            "title": title,
            "view": "timeSeries",
            "stacked": False,
            "region": "${AWS::Region}",
            "stat": stat,
            "period": PERIOD_SECONDS,
            "metrics": metrics,
        },
    }


def _ours(names: tuple[str, ...], stage: str) -> list[list[Any]]:
    return [[NAMESPACE, name, "service", SERVICE, "stage", stage] for name in names]


def call_metrics(destinations: tuple[str, ...]) -> tuple[str, ...]:
    """The metrics counting each destination's calls (its plug-in's `call_metric`)."""
    return tuple(metric for name in destinations if (metric := registry.plugin(name).call_metric))


def dashboard_body(
    stage: str, alarms: list[str] | None = None, destinations: tuple[str, ...] = ()
) -> dict[str, Any]:
    """The stage's dashboard for its `destinations`; `${...}` are resolved by the `Fn::Sub`
    around it."""
    refused_by_reason = (
        f'SEARCH(\'{{{NAMESPACE},reason,service,stage}} MetricName="HitsRefusedByReason"'
        f' service="{SERVICE}" stage="{stage}"\', \'Sum\', {PERIOD_SECONDS})'
    )
    return {
        "widgets": [
            {
                "type": "text",
                "x": 0,
                "y": 0,
                "width": 24,
                "height": 2,
                "properties": {
                    "markdown": f"## pixel-relay `{stage}`\nHits from GTM, events into"
                    f" {', '.join(destinations) or 'the destinations'}."
                    ' Triage the dead-letter queue with `make ops ARGS="dlq --stage'
                    f' {stage}"` in a checkout of pixel-relay; metrics and alarms are'
                    " explained in docs/operations.md."
                },
            },
            _metric_widget("Hits accepted / refused (pixel)", _ours(PIXEL_METRICS, stage), y=2),
            _metric_widget(
                "Hits refused by reason",
                [[{"expression": refused_by_reason, "id": "refused", "label": ""}]],
                x=12,
                y=2,
            ),
            _metric_widget(
                "Events delivered / rejected / retried (consumer)",
                _ours(CONSUMER_METRICS, stage),
                y=8,
            ),
            _metric_widget(
                "Calls to the destinations", _ours(call_metrics(destinations), stage), x=12, y=8
            ),
            _metric_widget(
                "Dead-letter queue: depth and oldest age (s)",
                [
                    [
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        "QueueName",
                        "${DeadLetterQueue.QueueName}",
                    ],
                    [".", "ApproximateAgeOfOldestMessage", ".", ".", {"yAxis": "right"}],
                ],
                stat="Maximum",
                y=14,
            ),
            _metric_widget(
                "Events queue: waiting and oldest age (s)",
                [
                    [
                        "AWS/SQS",
                        "ApproximateNumberOfMessagesVisible",
                        "QueueName",
                        "${EventsQueue.QueueName}",
                    ],
                    [".", "ApproximateAgeOfOldestMessage", ".", ".", {"yAxis": "right"}],
                ],
                stat="Maximum",
                x=12,
                y=14,
            ),
            _metric_widget(
                "Consumer errors and throttles",
                [
                    ["AWS/Lambda", "Errors", "FunctionName", f"${{{CONSUMER}}}"],
                    [".", "Throttles", ".", "."],
                    [".", "Invocations", ".", ".", {"yAxis": "right"}],
                ],
                y=20,
            ),
            _metric_widget(
                "Pixel function errors, throttles and duration (p99 ms)",
                [
                    ["AWS/Lambda", "Errors", "FunctionName", f"${{{PIXEL}}}"],
                    [".", "Throttles", ".", "."],
                    [".", "Duration", ".", ".", {"stat": "p99", "yAxis": "right"}],
                ],
                x=12,
                y=20,
            ),
            {
                "type": "alarm",
                "x": 0,
                "y": 26,
                "width": 24,
                "height": 3,
                "properties": {
                    "title": "Alarms",
                    "alarms": [f"${{{name}.Arn}}" for name in alarms or []],
                },
            },
        ]
    }
