"""`verify`: a read-only check of a deployed stage, for both deploy paths.

    make verify STAGE=prod                                  # finds the stage by itself
    make verify STAGE=prod ARGS="--stack-name my-stack"     # a stack not named pixel-relay-<stage>

(`.venv/bin/python -m devtools.deploy.verify --stage prod`, and
`.venv/bin/python -m devtools.deploy.stage verify --stage prod`, run the same check.)

Where the stage's resources are (`find_deployment`):

- **CloudFormation path**: the stack `--stack-name`, by default `<app>-<stage>`
  (`pixel-relay-prod`, the name docs/deploy.md deploys). Its resources are read with
  `DescribeStackResources` by logical id: the functions `APIHandler` and `Deliver` have names
  CloudFormation made up (`pixel-relay-prod-Deliver-1A2B3C4D5E6F`), the queues' physical ids
  are their URLs, the API's URL is the `EndpointURL` output.
- **`chalice deploy` path**, when no such stack exists: Chalice's names,
  `<app>-<stage>` (the pixel) and `<app>-<stage>-deliver`; the queues by the names in the
  stage's settings.

What it checks, the things an operator gets wrong (each failure is one line naming the fix):
the stack's status; both functions exist; both queues exist with the redrive policy,
visibility timeout, retention and encryption `devtools/queue_spec.py` specifies; the pixel
sends to that events queue and the consumer parks on that dead-letter queue; exactly one
mapping from the events queue to the consumer, enabled, with `ReportBatchItemFailures`; and
the consumer's `REPORT_BATCH_ITEM_FAILURES` agreeing with the mapping. It changes nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import ClientError

from chalicelib.config import QueueWiring
from chalicelib.env import ConfigError
from devtools.deploy.mapping import PARTIAL_BATCH, consumer_mappings, has_partial_batch_responses
from devtools.deploy.preflight import check_region
from devtools.deploy.queues import (
    attribute_differences,
    existing_queue_url,
    foreign_key,
    foreign_key_problem,
)
from devtools.deploy.template import LIVE_ALIAS
from devtools.paths import ROOT
from devtools.queue_spec import QueueSpec, chalice_config, stage_environment

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

# Logical ids in the packaged template (Chalice's own, and devtools/deploy/template.py's).
PIXEL_ID: Final = "APIHandler"
CONSUMER_ID: Final = "Deliver"
EVENTS_QUEUE_ID: Final = "EventsQueue"
DEAD_LETTER_QUEUE_ID: Final = "DeadLetterQueue"
ENDPOINT_OUTPUT: Final = "EndpointURL"
# A stack in one of these states runs what its last successful deploy left.
STABLE_STACK_STATES: Final = frozenset(
    {"CREATE_COMPLETE", "UPDATE_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_COMPLETE"}
)
ENCRYPTION: Final = ("SqsManagedSseEnabled", "KmsMasterKeyId")
TRUE: Final = frozenset({"true", "1"})
CHALICE_PATH: Final = "chalice deploy"


class DeploymentNotFoundError(SystemExit):
    """No stack of that name: the message names the region and the option to use."""


@dataclass(frozen=True)
class Deployment:
    """Where one stage's resources are, on either deploy path."""

    stage: str
    pixel: str  # function names
    consumer: str
    events_queue: str  # queue names
    dead_letter_queue: str
    events_queue_url: str | None  # None: does not exist
    dead_letter_queue_url: str | None
    stack_name: str | None = None  # None: the chalice deploy path
    stack_status: str | None = None
    api_url: str | None = None  # the stack's EndpointURL; on the chalice path `chalice url`
    # The stack's record of the dead-letter queue, whether or not it still exists.
    recorded_dead_letter_queue_url: str | None = None

    @property
    def path(self) -> str:
        if self.stack_name is None:
            return CHALICE_PATH
        return f"CloudFormation stack {self.stack_name}"

    def redeploy(self) -> str:
        """The command that applies a change of the stage's settings. On the stack path it
        changes the template, so the stack update carries it; it cannot bring back what was
        deleted outside the stack (`recreate`)."""
        if self.stack_name is None:
            return f"make deploy STAGE={self.stage}"
        return (
            f"make package STAGE={self.stage}, then the aws cloudformation package/deploy"
            f" commands it prints (--stack-name {self.stack_name})"
        )

    def recreate(self, what: str, command: str | None = None) -> str:
        """How to bring back `what`, deleted outside the deploy tool. `make deploy` creates
        whatever is missing. A stack still records a resource deleted behind its back and an
        unchanged template updates nothing, so there the fix is AWS's: the direct `command`
        (a resource with a name comes back under that name and the stack's record holds
        again), and for the stack's record the drift detection and import steps of
        docs/operations.md#deleted-outside-the-stack."""
        if self.stack_name is None:
            return f"make deploy STAGE={self.stage}"
        steps = f"{command}; then " if command else ""
        return (
            f"{steps}the stack {self.stack_name} still records {what} (redeploying it changes"
            " nothing): docs/operations.md#deleted-outside-the-stack"
        )


def default_stack_name(stage: str, root: Path = ROOT) -> str:
    return f"{chalice_config(root)['app_name']}-{stage}"


def queue_name(url: str) -> str:
    return url.rstrip("/").rsplit("/", 1)[-1]


def _stack(cloudformation: Any, stack_name: str) -> dict[str, Any] | None:
    try:
        stacks = cloudformation.describe_stacks(StackName=stack_name)["Stacks"]
    except ClientError as error:
        message = str(error.response.get("Error", {}).get("Message", ""))
        if "does not exist" in message:
            return None
        raise
    return dict(stacks[0]) if stacks else None


def stack_deployment(
    stage: str, root: Path, cloudformation: Any, stack_name: str, sqs: SQSClient | None = None
) -> Deployment | None:
    """The stage as the stack holds it; None when there is no such stack. With `sqs`, a
    queue the stack records but that was deleted behind its back has no URL."""
    stack = _stack(cloudformation, stack_name)
    if stack is None:
        return None
    resources: dict[str, str] = {}
    for resource in cloudformation.describe_stack_resources(StackName=stack_name)["StackResources"]:
        logical, physical = resource.get("LogicalResourceId"), resource.get("PhysicalResourceId")
        if logical and physical:
            resources[str(logical)] = str(physical)
    outputs = {
        str(output["OutputKey"]): str(output["OutputValue"]) for output in stack.get("Outputs", [])
    }
    spec = QueueSpec.for_stage(stage, root)
    events_url = resources.get(EVENTS_QUEUE_ID)
    dead_letter_url = resources.get(DEAD_LETTER_QUEUE_ID)
    recorded_dead_letter_url = dead_letter_url
    if sqs is not None:  # the stack's own URL, as long as the queue is there
        if events_url and existing_queue_url(sqs, queue_name(events_url)) is None:
            events_url = None
        if dead_letter_url and existing_queue_url(sqs, queue_name(dead_letter_url)) is None:
            dead_letter_url = None
    return Deployment(
        stage=stage,
        pixel=resources.get(PIXEL_ID, f"(no {PIXEL_ID} in the stack)"),
        consumer=resources.get(CONSUMER_ID, f"(no {CONSUMER_ID} in the stack)"),
        events_queue=_recorded_name(resources.get(EVENTS_QUEUE_ID), spec.events_queue),
        dead_letter_queue=_recorded_name(recorded_dead_letter_url, spec.dead_letter_queue),
        events_queue_url=events_url,
        dead_letter_queue_url=dead_letter_url,
        stack_name=stack_name,
        stack_status=str(stack.get("StackStatus", "")),
        api_url=outputs.get(ENDPOINT_OUTPUT),
        recorded_dead_letter_queue_url=recorded_dead_letter_url,
    )


def _recorded_name(url: str | None, default: str) -> str:
    return queue_name(url) if url else default


def chalice_deployment(stage: str, root: Path, sqs: SQSClient) -> Deployment:
    """The stage under the names `chalice deploy` gives it."""
    prefix = f"{chalice_config(root)['app_name']}-{stage}"
    spec = QueueSpec.for_stage(stage, root)
    return Deployment(
        stage=stage,
        pixel=prefix,
        consumer=f"{prefix}-deliver",
        events_queue=spec.events_queue,
        dead_letter_queue=spec.dead_letter_queue,
        events_queue_url=existing_queue_url(sqs, spec.events_queue),
        dead_letter_queue_url=existing_queue_url(sqs, spec.dead_letter_queue),
    )


def find_deployment(
    stage: str, root: Path, sqs: SQSClient, cloudformation: Any, stack_name: str | None = None
) -> Deployment:
    """`stack_name`'s stack (which must exist), else the stack `<app>-<stage>` if there is
    one, else the chalice deploy path's names."""
    if stack_name:
        found = stack_deployment(stage, root, cloudformation, stack_name, sqs)
        if found is None:
            region = cloudformation.meta.region_name
            raise DeploymentNotFoundError(
                f"no CloudFormation stack {stack_name} in region {region}: check --stack-name"
                " and the region (AWS_REGION, AWS_PROFILE), or leave --stack-name out for a"
                " stage deployed with make deploy"
            )
        return found
    found = stack_deployment(stage, root, cloudformation, default_stack_name(stage, root), sqs)
    return found if found is not None else chalice_deployment(stage, root, sqs)


# The checks -------------------------------------------------------------------------------


def wanted_kms_key(spec: QueueSpec) -> str | None:
    """The customer managed KMS key the stage names for its queues, or None (SQS-managed
    encryption). Hook: the stage setting `QUEUE_KMS_KEY` (issue 14) becomes
    `QueueSpec.kms_key`; until a QueueSpec has that field this is None."""
    key = getattr(spec, "kms_key", None)
    return None if key is None else str(getattr(key, "arn", key))


def _set_attributes(url: str, attributes: Mapping[str, str]) -> str:
    return (
        f"aws sqs set-queue-attributes --queue-url {url}"
        f" --attributes {shlex.quote(json.dumps(dict(attributes)))}"
    )


def encryption_problems(
    name: str, url: str, current: Mapping[QueueAttributeNameType, str], spec: QueueSpec
) -> list[str]:
    """The queue encrypted as the stage says: with its KMS key, or SQS-managed."""
    key = wanted_kms_key(spec)
    have = current.get("KmsMasterKeyId") or None
    foreign = foreign_key(current, spec)
    if foreign is not None:
        return [foreign_key_problem(name, foreign)]
    managed = current.get("SqsManagedSseEnabled") == "true"
    if key is not None and (have != key or managed):
        # One server-side encryption per queue: SQS-managed goes off in the same call.
        wanted = {"KmsMasterKeyId": key, **({"SqsManagedSseEnabled": "false"} if managed else {})}
        also = " and SQS-managed encryption is on" if managed else ""
        return [
            f"queue {name}: KmsMasterKeyId is {have!r}{also}, want {key!r}:"
            f" {_set_attributes(url, wanted)}"
        ]
    if key is None and current.get("SqsManagedSseEnabled") != "true":
        return [
            f"queue {name}: not encrypted at rest:"
            f" {_set_attributes(url, {'SqsManagedSseEnabled': 'true'})}"
        ]
    return []


def _create_queue(name: str, attributes: Mapping[QueueAttributeNameType, str]) -> str:
    return (
        f"aws sqs create-queue --queue-name {name}"
        f" --attributes {shlex.quote(json.dumps(dict(attributes)))}"
    )


def queue_arn_of(url: str | None) -> str | None:
    """A queue's ARN from its URL (https://sqs.<region>.amazonaws.com/<account>/<name>), the
    queue existing or not: a redrive policy can name a queue about to be created."""
    if url is None:
        return None
    parts = urllib.parse.urlsplit(url)
    account, _, name = parts.path.strip("/").partition("/")
    region = parts.hostname.split(".")[1] if parts.hostname and "." in parts.hostname else ""
    if not (account and name and region):
        return None
    import boto3

    partition = boto3.session.Session().get_partition_for_region(region)
    return f"arn:{partition}:sqs:{region}:{account}:{name}"


def _attributes(sqs: SQSClient, url: str) -> dict[QueueAttributeNameType, str]:
    return sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]


def queue_findings(sqs: SQSClient, deployment: Deployment, spec: QueueSpec) -> list[str]:
    """How the queues differ from the spec; empty when they match."""
    problems: list[str] = []
    if deployment.dead_letter_queue_url is None:
        problems.append(
            f"queue {deployment.dead_letter_queue}: does not exist:"
            + " "
            + deployment.recreate(
                f"queue {deployment.dead_letter_queue}",
                _create_queue(deployment.dead_letter_queue, spec.dead_letter_attributes()),
            )
        )
    if deployment.events_queue_url is None:
        dead_letter_arn = queue_arn_of(
            deployment.dead_letter_queue_url or deployment.recorded_dead_letter_queue_url
        )
        create_events = (
            _create_queue(deployment.events_queue, spec.events_attributes(dead_letter_arn))
            if dead_letter_arn
            else None
        )
        problems.append(
            f"queue {deployment.events_queue}: does not exist:"
            f" {deployment.recreate(f'queue {deployment.events_queue}', create_events)}"
        )
    if deployment.dead_letter_queue_url is None or deployment.events_queue_url is None:
        return problems
    dead_letter = _attributes(sqs, deployment.dead_letter_queue_url)
    events = _attributes(sqs, deployment.events_queue_url)
    for name, url, current, wanted in (
        (
            deployment.dead_letter_queue,
            deployment.dead_letter_queue_url,
            dead_letter,
            spec.dead_letter_attributes(),
        ),
        (
            deployment.events_queue,
            deployment.events_queue_url,
            events,
            spec.events_attributes(dead_letter["QueueArn"]),
        ),
    ):
        plain: dict[QueueAttributeNameType, str] = {
            attribute: value for attribute, value in wanted.items() if attribute not in ENCRYPTION
        }
        for attribute, value in attribute_differences(current, plain).items():
            problems.append(
                f"queue {name}: {attribute} is {current.get(attribute)!r}, want {value!r}:"
                f" {_set_attributes(url, {attribute: value})}"
            )
        problems += encryption_problems(name, url, current, spec)
    return problems


def _configuration(
    lambda_client: Any, function: str, alias: str | None = None
) -> dict[str, Any] | None:
    """The function's configuration; with `alias`, the version the alias runs (what the API
    and the mapping invoke on the stack path), else $LATEST."""
    qualifier = {"Qualifier": alias} if alias else {}
    try:
        return dict(lambda_client.get_function_configuration(FunctionName=function, **qualifier))
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise


def _environment(configuration: Mapping[str, Any]) -> dict[str, str]:
    variables = configuration.get("Environment", {}).get("Variables", {})
    return {str(k): str(v) for k, v in variables.items()}


@dataclass
class Findings:
    ok: list[str]
    problems: list[str]


def live_alias(lambda_client: Any, deployment: Deployment) -> str | None:
    """LIVE_ALIAS when the stage's consumer has it (the stack path publishes versions behind
    it), else None: the functions run $LATEST."""
    if deployment.stack_name is None:
        return None
    try:
        lambda_client.get_alias(FunctionName=deployment.consumer, Name=LIVE_ALIAS)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ResourceNotFoundException":
            return None
        raise
    return LIVE_ALIAS


def _create_mapping(queue_arn: str, function: str, wiring: QueueWiring) -> str:
    """The mapping as both deploy paths make it (chalice's decorator, the template)."""
    return (
        f"aws lambda create-event-source-mapping --function-name {function}"
        f" --event-source-arn {queue_arn} --batch-size {wiring.batch_size}"
        f" --maximum-batching-window-in-seconds {wiring.batching_window_seconds}"
        f" --function-response-types {PARTIAL_BATCH}"
        f" --scaling-config {shlex.quote(json.dumps(_scaling(wiring)))}"
    )


def _scaling(wiring: QueueWiring) -> dict[str, int]:
    return {"MaximumConcurrency": wiring.maximum_concurrency}


# What each mapping setting is, in the mapping and in the stage's settings.
MAPPING_SETTINGS: Final = (
    ("BatchSize", "BATCH_SIZE"),
    ("MaximumBatchingWindowInSeconds", "BATCH_WINDOW_SECONDS"),
    ("MaximumConcurrency", "MAX_CONCURRENCY"),
)


def mapping_settings(mapping: Mapping[str, Any]) -> dict[str, int | None]:
    """The batch size, batching window and concurrency cap a mapping has (None: no cap)."""
    return {
        "BatchSize": mapping.get("BatchSize"),
        "MaximumBatchingWindowInSeconds": mapping.get("MaximumBatchingWindowInSeconds") or 0,
        "MaximumConcurrency": (mapping.get("ScalingConfig") or {}).get("MaximumConcurrency"),
    }


def wanted_mapping_settings(wiring: QueueWiring) -> dict[str, int | None]:
    return {
        "BatchSize": wiring.batch_size,
        "MaximumBatchingWindowInSeconds": wiring.batching_window_seconds,
        "MaximumConcurrency": wiring.maximum_concurrency,
    }


def mapping_setting_problems(mapping: Mapping[str, Any], wiring: QueueWiring) -> list[str]:
    """The batch size, window and concurrency cap against the stage's settings: one line
    naming each difference, with the one command that sets all three."""
    have, want = mapping_settings(mapping), wanted_mapping_settings(wiring)
    differences = [
        f"{name} is {'unset (no cap)' if have[name] is None else have[name]}, the stage says"
        f" {want[name]} ({variable})"
        for name, variable in MAPPING_SETTINGS
        if have[name] != want[name]
    ]
    if not differences:
        return []
    uuid = mapping["UUID"]
    return [
        f"mapping {uuid}: {'; '.join(differences)}: aws lambda update-event-source-mapping"
        f" --uuid {uuid} --batch-size {wiring.batch_size}"
        f" --maximum-batching-window-in-seconds {wiring.batching_window_seconds}"
        f" --scaling-config {shlex.quote(json.dumps(_scaling(wiring)))}"
    ]


def check(
    deployment: Deployment,
    spec: QueueSpec,
    sqs: SQSClient,
    lambda_client: Any,
    wiring: QueueWiring,
) -> Findings:
    """Every check; read-only. `wiring`: the stage's batch size, window and concurrency cap."""
    ok: list[str] = []
    problems: list[str] = []
    status = deployment.stack_status
    if status is not None and status not in STABLE_STACK_STATES:
        how = (
            "wait for it to finish and run verify again"
            if status.endswith("IN_PROGRESS")
            else "read its events (aws cloudformation describe-stack-events --stack-name"
            f" {deployment.stack_name}), fix the cause and deploy it again"
        )
        problems.append(f"stack {deployment.stack_name}: {status}: {how}")

    queue_problems = queue_findings(sqs, deployment, spec)
    problems += queue_problems
    if not queue_problems:
        ok.append(
            f"queues {deployment.events_queue} and {deployment.dead_letter_queue}: as specified"
            " (redrive, visibility timeout, retention, encryption)"
        )

    alias = live_alias(lambda_client, deployment)
    pixel = _configuration(lambda_client, deployment.pixel, alias)
    consumer = _configuration(lambda_client, deployment.consumer, alias)
    for role, name, configuration in (
        ("pixel", deployment.pixel, pixel),
        ("consumer", deployment.consumer, consumer),
    ):
        if configuration is None:
            problems.append(
                f"{role} function {name}: does not exist: {deployment.recreate(f'function {name}')}"
            )
        else:
            ok.append(f"{role} function {name}: exists")
    if pixel is not None:
        sends_to = _environment(pixel).get("EVENTS_QUEUE")
        if sends_to != deployment.events_queue:
            problems.append(
                f"pixel function {deployment.pixel}: sends to EVENTS_QUEUE={sends_to!r}, but the"
                f" consumer reads {deployment.events_queue}: correct EVENTS_QUEUE in the stage's"
                f" environment_variables, then {deployment.redeploy()}"
            )
    if consumer is None:
        return Findings(ok, problems)
    environment = _environment(consumer)
    parks_on = environment.get("DEAD_LETTER_QUEUE")
    if parks_on != deployment.dead_letter_queue:
        problems.append(
            f"consumer function {deployment.consumer}: parks rejected events on"
            f" DEAD_LETTER_QUEUE={parks_on!r}, not on {deployment.dead_letter_queue}: correct it"
            f" in the stage's environment_variables, then {deployment.redeploy()}"
        )
    problems_before = len(problems)
    mappings: list[dict[str, Any]] = []
    queue_arn = ""
    if deployment.events_queue_url is not None:
        queue_arn = sqs.get_queue_attributes(
            QueueUrl=deployment.events_queue_url, AttributeNames=["QueueArn"]
        )["Attributes"]["QueueArn"]
        mappings = consumer_mappings(lambda_client, queue_arn, str(consumer["FunctionName"]))
    if not mappings:
        create = (
            _create_mapping(
                queue_arn, str(consumer["FunctionName"]) + (f":{alias}" if alias else ""), wiring
            )
            if queue_arn
            else None
        )
        problems.append(
            f"mapping: none from {deployment.events_queue} to {deployment.consumer}, so no event"
            f" is delivered: {deployment.recreate('the mapping', create)}"
        )
        return Findings(ok, problems)
    for extra in mappings[1:]:
        problems.append(
            f"mapping {extra['UUID']}: a second mapping from {deployment.events_queue} to the"
            f" consumer: aws lambda delete-event-source-mapping --uuid {extra['UUID']}"
        )
    mapping = mappings[0]
    uuid = mapping["UUID"]
    state = str(mapping.get("State", ""))
    if state in {"Disabled", "Disabling"}:
        problems.append(
            f"mapping {uuid}: {state}, events wait on {deployment.events_queue}:"
            f" aws lambda update-event-source-mapping --uuid {uuid} --enabled"
        )
    problems += mapping_setting_problems(mapping, wiring)
    partial = has_partial_batch_responses(mapping)
    reports = environment.get("REPORT_BATCH_ITEM_FAILURES", "").strip().lower() in TRUE
    if not partial:
        danger = (
            " while the consumer runs with REPORT_BATCH_ITEM_FAILURES=true: Lambda deletes a"
            " batch's failed events with it"
            if reports
            else ""
        )
        problems.append(
            f"mapping {uuid}: {PARTIAL_BATCH} is OFF{danger}: aws lambda"
            f" update-event-source-mapping --uuid {uuid} --function-response-types"
            f" {PARTIAL_BATCH}"
        )
    elif not reports:
        # Safe: the consumer deletes what it finished and raises, which loses nothing with
        # either mapping setting (the `chalice deploy` path ships it so, because the mapping
        # gets the setting only after Chalice has deployed). Only the Lambda Errors metric
        # counts retries; a note, not a failure.
        ok.append(
            f"mapping {uuid}: {state}, {PARTIAL_BATCH} on; the consumer runs with"
            " REPORT_BATCH_ITEM_FAILURES false (safe: it deletes what it finished and raises, so"
            " a batch with a retry counts as a Lambda error). To report batch item failures"
            " instead, set REPORT_BATCH_ITEM_FAILURES=true in the stage's environment_variables,"
            f" then {deployment.redeploy()}"
        )
        return Findings(ok, problems)
    if len(problems) == problems_before:
        ok.append(
            f"mapping {uuid}: {state}, {PARTIAL_BATCH} on, the consumer reports batch item"
            f" failures (REPORT_BATCH_ITEM_FAILURES=true); {_described(wiring)}"
        )
    return Findings(ok, problems)


def _described(wiring: QueueWiring) -> str:
    return (
        f"batches of up to {wiring.batch_size} within {wiring.batching_window_seconds} s, at most"
        f" {wiring.maximum_concurrency} at once"
    )


def verify_stage(
    stage: str,
    root: Path,
    sqs: SQSClient,
    lambda_client: Any,
    cloudformation: Any,
    stack_name: str | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    """Find the stage, check it, print one line per finding; 0 when all is well."""
    out = out or sys.stdout
    err = err or sys.stderr
    spec = QueueSpec.for_stage(stage, root)
    deployment = find_deployment(stage, root, sqs, cloudformation, stack_name)
    print(f"stage {stage}: {deployment.path}", file=out)
    try:
        wiring = QueueWiring.from_env(stage_environment(stage, root))
    except ConfigError as error:
        raise SystemExit(f"stage {stage}: {error}") from None
    findings = check(deployment, spec, sqs, lambda_client, wiring)
    for line in findings.ok:
        print(f"ok   {line}", file=out)
    for line in findings.problems:
        print(f"FAIL {line}", file=err)
    return 1 if findings.problems else 0


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.deploy.verify",
        description="Read-only check of a deployed stage (either deploy path): queues,"
        f" functions, the event source mapping, {PARTIAL_BATCH}.",
    )
    parser.add_argument("--stage", required=True, help="stage in .chalice/config.json")
    parser.add_argument(
        "--stack-name",
        help="the CloudFormation stack (default: <app>-<stage> if it exists, else the"
        " names chalice deploy gives)",
    )
    parser.add_argument("--profile", help="AWS profile (default: your usual credentials)")
    parser.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, session: Any = None) -> int:
    args = parse_args(argv)
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or None
    session = session or boto3.Session(profile_name=args.profile, region_name=region)
    if not session.region_name:
        raise SystemExit("no AWS region: set AWS_REGION (or give the profile a region)")
    check_region(args.stage, session.region_name, args.project_dir.resolve())
    return verify_stage(
        args.stage,
        args.project_dir.resolve(),
        session.client("sqs"),
        session.client("lambda"),
        session.client("cloudformation"),
        args.stack_name,
    )


if __name__ == "__main__":
    sys.exit(main())
