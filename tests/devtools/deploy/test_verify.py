"""`verify` finds a stage on either deploy path against moto's server, and names the fix for
what an operator gets wrong, one line each.

CloudFormation path: the real packaged template (`packaged`, after SAM's transform) created
through moto's CloudFormation, so the functions get CloudFormation's own physical names
(`pixel-relay-dev-Deliver-<random>`). moto's CloudFormation lacks `AWS::ApiGateway::Stage`,
`AWS::CloudWatch::Alarm` and `AWS::CloudWatch::Dashboard`, and its `AWS::ApiGateway::RestApi`
neither imports the swagger `Body` nor accepts a RestApi without `Name` (so a `Deployment`
finds no methods): those resources and the outputs naming them are left out, the API gets a
`Name`. Functions, roles, queues, the mapping and log groups are the template's own.

Chalice path: the resources under the names `chalice deploy` gives them, made directly
(the real `chalice deploy` stops at moto's ImportRestApi: test_deploy_stage.py).
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import boto3
import pytest

from devtools.deploy import stage as deploy_stage
from devtools.deploy import verify
from devtools.deploy.queues import ensure_queues
from devtools.offline import REGION
from devtools.paths import ROOT
from devtools.queue_spec import QueueSpec, stage_environment
from tests.devtools.aws_cli import run_aws
from tests.devtools.deploy_fixtures import STACK, Packaged, deploy_stack, lambda_role

STAGE = "dev"


def client(moto: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto, region_name=REGION)  # type: ignore[call-overload]


def run_verify(
    moto: str, project: Path = ROOT, stack_name: str | None = None
) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    status = verify.verify_stage(
        STAGE,
        project,
        client(moto, "sqs"),
        client(moto, "lambda"),
        client(moto, "cloudformation"),
        stack_name,
        out,
        err,
    )
    return status, out.getvalue(), err.getvalue()


def test_a_cloudformation_stack_is_found_by_its_own_names_and_passes(
    moto: str, packaged: Packaged
) -> None:
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "true"})
    status, out, err = run_verify(moto)
    assert (status, err) == (0, "")
    assert out.startswith(f"stage dev: CloudFormation stack {STACK}\n")
    # The template names the functions as `chalice deploy` does; found through the stack.
    assert "ok   consumer function pixel-relay-dev-deliver" in out
    assert "ok   pixel function pixel-relay-dev" in out
    assert "ok   queues pixel-relay-dev-events and pixel-relay-dev-events-dlq: as specified" in out
    assert "ReportBatchItemFailures on, the consumer reports batch item failures" in out
    # The same through both command lines.
    assert verify.main(["--stage", STAGE, "--stack-name", STACK]) == 0
    # deploy_stage's verify uses only these three of its clients.
    clients = SimpleNamespace(
        sqs=client(moto, "sqs"),
        lambda_client=client(moto, "lambda"),
        cloudformation=client(moto, "cloudformation"),
    )
    assert deploy_stage.verify(STAGE, ROOT, cast(Any, clients)) == 0


def test_a_hand_changed_queue_fails_naming_the_fix_and_a_safe_consumer_setting_is_a_note(
    moto: str, packaged: Packaged
) -> None:
    """The mapping has ReportBatchItemFailures and the consumer runs with it false (safe: it
    deletes what it finished and raises), and someone shortened the events queue's visibility
    timeout by hand: one failure with its fix, and a note on how to report item failures."""
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "false"})
    outputs = client(moto, "cloudformation").describe_stacks(StackName=STACK)["Stacks"][0]
    url = {o["OutputKey"]: o["OutputValue"] for o in outputs["Outputs"]}["EventsQueueUrl"]
    client(moto, "sqs").set_queue_attributes(QueueUrl=url, Attributes={"VisibilityTimeout": "30"})

    status, out, err = run_verify(moto)
    assert status == 1
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0] == (
        "FAIL queue pixel-relay-dev-events: VisibilityTimeout is '30', want '360':"
        f" aws sqs set-queue-attributes --queue-url {url}"
        """ --attributes '{"VisibilityTimeout": "360"}'"""
    )
    [note] = [line for line in out.splitlines() if "REPORT_BATCH_ITEM_FAILURES false" in line]
    assert "set REPORT_BATCH_ITEM_FAILURES=true in the stage's environment_variables" in note
    assert (
        "make package STAGE=dev, then the aws cloudformation package/deploy commands it"
        f" prints (--stack-name {STACK})" in note
    )


def test_a_stack_name_that_does_not_exist_is_named_with_the_region(moto: str) -> None:
    with pytest.raises(
        verify.DeploymentNotFoundError,
        match=rf"no CloudFormation stack nope in region {REGION}: check --stack-name",
    ):
        run_verify(moto, stack_name="nope")


# The chalice deploy path ------------------------------------------------------------------


def _zip() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("app.py", "def handler(event, context):\n    return {}\n")
    return buffer.getvalue()


def chalice_stage(moto: str, project: Path, report: str, partial: bool) -> tuple[str, str]:
    """Queues, both functions and the mapping under Chalice's names; (queue URL, mapping)."""
    spec = QueueSpec.for_stage(STAGE, project)
    events, _ = ensure_queues(client(moto, "sqs"), spec)
    role = lambda_role(client(moto, "iam"), "pixel-relay-dev")
    environment = {**stage_environment(STAGE, project), "REPORT_BATCH_ITEM_FAILURES": report}
    lambda_client = client(moto, "lambda")
    for name in ("pixel-relay-dev", "pixel-relay-dev-deliver"):
        lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="app.handler",
            Code={"ZipFile": _zip()},
            Environment={"Variables": environment},
        )
    mapping = lambda_client.create_event_source_mapping(
        EventSourceArn=events.arn,
        FunctionName="pixel-relay-dev-deliver",
        BatchSize=100,  # as the stage says: BATCH_SIZE, BATCH_WINDOW_SECONDS, MAX_CONCURRENCY
        MaximumBatchingWindowInSeconds=1,
        ScalingConfig={"MaximumConcurrency": 5},
        **({"FunctionResponseTypes": ["ReportBatchItemFailures"]} if partial else {}),
    )
    return events.url, str(mapping["UUID"])


def test_without_a_stack_the_chalice_names_are_found_and_pass(moto: str, project: Path) -> None:
    chalice_stage(moto, project, report="true", partial=True)
    status, out, err = run_verify(moto, project)
    assert (status, err) == (0, "")
    assert out.startswith("stage dev: chalice deploy\n")
    assert "ok   consumer function pixel-relay-dev-deliver: exists" in out
    assert "ok   pixel function pixel-relay-dev: exists" in out


def test_a_consumer_reporting_failures_to_a_mapping_without_the_setting_is_the_loud_failure(
    moto: str, project: Path
) -> None:
    """REPORT_BATCH_ITEM_FAILURES=true without the mapping setting: Lambda would delete
    failed events with their batch."""
    _, uuid = chalice_stage(moto, project, report="true", partial=False)
    status, _, err = run_verify(moto, project)
    assert status == 1
    assert err == (
        f"FAIL mapping {uuid}: ReportBatchItemFailures is OFF while the consumer runs with"
        " REPORT_BATCH_ITEM_FAILURES=true: Lambda deletes a batch's failed events with it:"
        f" aws lambda update-event-source-mapping --uuid {uuid} --function-response-types"
        " ReportBatchItemFailures\n"
    )


def test_a_queue_encrypted_with_a_key_the_stage_does_not_name_and_a_disabled_mapping(
    moto: str, project: Path
) -> None:
    url, uuid = chalice_stage(moto, project, report="true", partial=True)
    key = client(moto, "kms").create_key()["KeyMetadata"]["Arn"]
    client(moto, "sqs").set_queue_attributes(QueueUrl=url, Attributes={"KmsMasterKeyId": key})
    client(moto, "lambda").update_event_source_mapping(UUID=uuid, Enabled=False)
    status, _, err = run_verify(moto, project)
    assert status == 1
    [kms, disabled] = err.splitlines()
    assert kms.startswith(f"FAIL queue pixel-relay-dev-events: encrypted with KMS key {key}")
    assert kms.endswith(
        f"set QUEUE_KMS_KEY={key} in the stage's environment_variables, then make policies"
        " and redeploy"
    )
    assert disabled == (
        f"FAIL mapping {uuid}: Disabled, events wait on pixel-relay-dev-events:"
        f" aws lambda update-event-source-mapping --uuid {uuid} --enabled"
    )


def test_missing_functions_and_queues_name_make_deploy(moto: str, project: Path) -> None:
    status, _, err = run_verify(moto, project)
    assert status == 1
    assert err.splitlines() == [
        "FAIL queue pixel-relay-dev-events-dlq: does not exist: make deploy STAGE=dev",
        "FAIL queue pixel-relay-dev-events: does not exist: make deploy STAGE=dev",
        "FAIL pixel function pixel-relay-dev: does not exist: make deploy STAGE=dev",
        "FAIL consumer function pixel-relay-dev-deliver: does not exist: make deploy STAGE=dev",
    ]


def test_a_mapping_unlike_the_stages_batch_settings_fails_and_the_printed_fix_works(
    moto: str, project: Path
) -> None:
    """Before, verify checked neither the batch size, the window nor the concurrency cap (and
    the chalice deploy path ran without a cap)."""
    _, uuid = chalice_stage(moto, project, report="true", partial=True)
    lambda_client = client(moto, "lambda")
    lambda_client.update_event_source_mapping(
        UUID=uuid, BatchSize=10, MaximumBatchingWindowInSeconds=0, ScalingConfig={}
    )
    status, _, err = run_verify(moto, project)
    assert status == 1
    [line] = err.splitlines()
    fix = (
        f"aws lambda update-event-source-mapping --uuid {uuid} --batch-size 100"
        " --maximum-batching-window-in-seconds 1 --scaling-config '{\"MaximumConcurrency\": 5}'"
    )
    assert line == (
        f"FAIL mapping {uuid}: BatchSize is 10, the stage says 100 (BATCH_SIZE);"
        " MaximumBatchingWindowInSeconds is 0, the stage says 1 (BATCH_WINDOW_SECONDS);"
        " MaximumConcurrency is unset (no cap), the stage says 5 (MAX_CONCURRENCY): " + fix
    )
    run_aws(fix, moto)
    status, out, err = run_verify(moto, project)
    assert (status, err) == (0, "")
    assert "batches of up to 100 within 1 s, at most 5 at once" in out


def stack_resource(moto: str, logical_id: str) -> str:
    cloudformation = client(moto, "cloudformation")
    resources = cloudformation.describe_stack_resources(StackName=STACK)["StackResources"]
    [physical] = [
        r["PhysicalResourceId"] for r in resources if r["LogicalResourceId"] == logical_id
    ]
    return str(physical)


def test_on_the_stack_path_a_mapping_deleted_by_hand_is_recreated_by_the_printed_command(
    moto: str, packaged: Packaged
) -> None:
    """Before, verify said to redeploy the stack: CloudFormation sees no change and creates
    nothing. Now the direct command, which works at once, and where the stack's record is
    put right (drift detection and import, as AWS documents)."""
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "true"})
    lambda_client = client(moto, "lambda")
    [mapping] = lambda_client.list_event_source_mappings()["EventSourceMappings"]
    lambda_client.delete_event_source_mapping(UUID=mapping["UUID"])

    status, _, err = run_verify(moto)
    assert status == 1
    [line] = err.splitlines()
    command, _, after = line.removeprefix(
        "FAIL mapping: none from pixel-relay-dev-events to pixel-relay-dev-deliver, so no event"
        " is delivered: "
    ).partition("; then ")
    assert command.startswith("aws lambda create-event-source-mapping --function-name"), line
    assert after == (
        f"the stack {STACK} still records the mapping (redeploying it changes nothing):"
        " docs/operations.md#deleted-outside-the-stack"
    )
    assert "make package" not in line
    run_aws(command, moto)
    status, _, err = run_verify(moto)
    assert (status, err) == (0, ""), err
    [again] = lambda_client.list_event_source_mappings()["EventSourceMappings"]
    assert again["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert again["ScalingConfig"] == {"MaximumConcurrency": 5}


def test_on_the_stack_path_deleted_queues_are_recreated_by_the_printed_commands(
    moto: str, packaged: Packaged
) -> None:
    """A queue comes back under its name, so its URL (the stack's physical id) holds again.
    Before, verify crashed on the stack's URL of a queue that no longer existed."""
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "true"})
    sqs = client(moto, "sqs")
    for logical_id in ("EventsQueue", "DeadLetterQueue"):
        sqs.delete_queue(QueueUrl=stack_resource(moto, logical_id))

    status, _, err = run_verify(moto)
    assert status == 1
    queue_lines = [line for line in err.splitlines() if line.startswith("FAIL queue")]
    assert len(queue_lines) == 2, err
    for line in queue_lines:  # the dead-letter queue first: the events queue redrives to it
        command = line.split(": does not exist: ", 1)[1].partition("; then ")[0]
        assert command.startswith("aws sqs create-queue --queue-name"), line
        run_aws(command, moto)
    status, _, err = run_verify(moto)
    assert (status, err) == (0, ""), err


def test_on_the_stack_path_a_deleted_function_names_the_steps_not_a_redeploy(
    moto: str, packaged: Packaged
) -> None:
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "true"})
    client(moto, "lambda").delete_function(FunctionName="pixel-relay-dev")
    status, _, err = run_verify(moto)
    assert status == 1
    assert (
        "FAIL pixel function pixel-relay-dev: does not exist: the stack pixel-relay-dev still"
        " records function pixel-relay-dev (redeploying it changes nothing):"
        " docs/operations.md#deleted-outside-the-stack"
    ) in err.splitlines()
