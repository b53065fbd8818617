"""The `chalice deploy` path against moto's server: queues created and corrected idempotently,
the real `chalice deploy` (which moto stops at ImportRestApi, DESIGN.md) still leaves a
mapping with ReportBatchItemFailures on and verified, and teardown guards undelivered events."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devtools.deploy import stage as deploy_stage
from devtools.deploy.bytecode import cache_name
from devtools.deploy.preflight import PreflightError, check_stage
from devtools.deploy.stage import (
    Clients,
    consumer_function_name,
    enable_partial_batch_responses,
    ensure_queues,
)
from devtools.offline import REGION
from devtools.queue_spec import QueueSpec

STAGE = "dev"


@pytest.fixture
def clients(moto: str) -> Clients:
    return Clients(
        boto3.client("sqs", endpoint_url=moto, region_name=REGION),
        boto3.client("lambda", endpoint_url=moto, region_name=REGION),
    )


def attributes(sqs: Any, name: str) -> dict[str, str]:
    url = sqs.get_queue_url(QueueName=name)["QueueUrl"]
    result: dict[str, str] = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])[
        "Attributes"
    ]
    return result


def test_queues_are_created_as_specified_and_a_second_run_changes_nothing(
    clients: Clients,
) -> None:
    spec = QueueSpec.for_stage(STAGE)
    first = ensure_queues(clients.sqs, spec)
    assert [state.created for state in first] == [True, True]
    events = attributes(clients.sqs, spec.events_queue)
    dead_letters = attributes(clients.sqs, spec.dead_letter_queue)
    assert int(events["VisibilityTimeout"]) == 6 * 60  # the deliver function's timeout: 60 s
    assert json.loads(events["RedrivePolicy"]) == {
        "deadLetterTargetArn": dead_letters["QueueArn"],
        "maxReceiveCount": spec.max_receive_count,
    }
    assert events["SqsManagedSseEnabled"] == dead_letters["SqsManagedSseEnabled"] == "true"
    assert dead_letters["MessageRetentionPeriod"] == str(14 * 24 * 3600)

    second = ensure_queues(clients.sqs, spec)
    assert [(s.created, s.changed) for s in second] == [(False, ()), (False, ())]
    assert [s.url for s in second] == [s.url for s in first]


def test_a_queue_changed_by_hand_is_put_back_without_being_recreated(clients: Clients) -> None:
    spec = QueueSpec.for_stage(STAGE)
    events, _ = ensure_queues(clients.sqs, spec)
    clients.sqs.send_message(QueueUrl=events.url, MessageBody="kept")
    clients.sqs.set_queue_attributes(
        QueueUrl=events.url,
        Attributes={"VisibilityTimeout": "30", "MessageRetentionPeriod": "60"},
    )
    again, _ = ensure_queues(clients.sqs, spec)
    assert again.changed == ("MessageRetentionPeriod", "VisibilityTimeout")
    assert attributes(clients.sqs, spec.events_queue)["VisibilityTimeout"] == "360"
    # Same queue, message still there: corrected in place.
    assert attributes(clients.sqs, spec.events_queue)["ApproximateNumberOfMessages"] == "1"


def test_a_longer_visibility_timeout_chosen_by_an_operator_is_kept(clients: Clients) -> None:
    spec = QueueSpec.for_stage(STAGE)
    events, _ = ensure_queues(clients.sqs, spec)
    clients.sqs.set_queue_attributes(QueueUrl=events.url, Attributes={"VisibilityTimeout": "900"})
    again, _ = ensure_queues(clients.sqs, spec)
    assert "VisibilityTimeout" not in again.changed
    assert attributes(clients.sqs, spec.events_queue)["VisibilityTimeout"] == "900"


def test_real_chalice_deploy_then_the_mapping_gets_partial_batch_responses(
    clients: Clients, project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """chalice deploy creates the role, both functions and the mapping on moto, then fails at
    ImportRestApi (moto). The command still configures that mapping, and says it failed."""
    status = deploy_stage.main(["deploy", "--stage", STAGE, "--project-dir", str(project)], clients)
    output = capfd.readouterr()  # chalice's own output too
    assert status == 1
    assert "ImportRestApi" in output.out + output.err
    assert "chalice deploy failed" in output.err
    assert "queue pixel-relay-dev-events: created" in output.out
    assert "ReportBatchItemFailures turned on and verified" in output.out
    # Chalice zipped chalicelib/ with the bytecode compiled just before: no compiling in Lambda.
    [bundle] = (project / ".chalice" / "deployments").glob("*.zip")
    with zipfile.ZipFile(bundle) as archive:
        assert cache_name("chalicelib/pixel.py") in archive.namelist()

    function = consumer_function_name(STAGE, project)
    [mapping] = clients.lambda_client.list_event_source_mappings()["EventSourceMappings"]
    assert mapping["FunctionArn"].endswith(f":function:{function}")
    assert mapping["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    assert mapping["EventSourceArn"].endswith(":pixel-relay-dev-events")

    # Idempotent: the mapping step alone, and the read-only verify, both agree; verify then
    # asks for REPORT_BATCH_ITEM_FAILURES=true (the stage ships false), its only complaint.
    assert (
        deploy_stage.main(["mapping", "--stage", STAGE, "--project-dir", str(project)], clients)
        == 0
    )
    assert "ReportBatchItemFailures already on and verified" in capfd.readouterr().out
    assert (
        deploy_stage.main(["verify", "--stage", STAGE, "--project-dir", str(project)], clients) == 1
    )
    output = capfd.readouterr()
    assert "ok   queues pixel-relay-dev-events and pixel-relay-dev-events-dlq" in output.out
    [complaint] = output.err.splitlines()
    assert complaint.startswith(f"FAIL consumer function {function}: REPORT_BATCH_ITEM_FAILURES")
    assert complaint.endswith("then make deploy STAGE=dev")


def test_verify_fails_while_the_mapping_lacks_the_setting(
    clients: Clients, project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    spec = QueueSpec.for_stage(STAGE, project)
    events, _ = ensure_queues(clients.sqs, spec)
    iam = boto3.client("iam", endpoint_url=clients.sqs.meta.endpoint_url, region_name=REGION)
    role = iam.create_role(
        RoleName="deliver-role",
        AssumeRolePolicyDocument=json.dumps(
            {
                "Version": "2012-10-17",
                "Statement": [
                    {
                        "Effect": "Allow",
                        "Principal": {"Service": "lambda.amazonaws.com"},
                        "Action": "sts:AssumeRole",
                    }
                ],
            }
        ),
    )["Role"]["Arn"]
    function = clients.lambda_client.create_function(
        FunctionName=consumer_function_name(STAGE, project),
        Runtime="python3.11",
        Role=role,
        Handler="app.deliver",
        Code={"ZipFile": _zip_with("app.py", "def deliver(event, context):\n    return {}\n")},
    )["FunctionArn"]
    clients.lambda_client.create_event_source_mapping(
        EventSourceArn=events.arn, FunctionName=function, BatchSize=10, Enabled=False
    )
    off = "ReportBatchItemFailures is OFF"
    assert (
        deploy_stage.main(["verify", "--stage", STAGE, "--project-dir", str(project)], clients) == 1
    )
    assert off in capfd.readouterr().err
    assert (
        deploy_stage.main(["mapping", "--stage", STAGE, "--project-dir", str(project)], clients)
        == 0
    )
    # The setting is on now; the rest of this bare stage (no pixel, a disabled mapping, no
    # environment) still fails: tests/devtools/deploy/test_verify.py.
    assert (
        deploy_stage.main(["verify", "--stage", STAGE, "--project-dir", str(project)], clients) == 1
    )
    assert off not in capfd.readouterr().err


def _zip_with(name: str, text: str) -> bytes:
    import io
    import zipfile

    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr(name, text)
    return buffer.getvalue()


class BusyThenReadyLambda:
    """Lambda right after chalice deploy: the new mapping is still Creating for a while."""

    def __init__(self, busy_calls: int) -> None:
        self.busy_calls = busy_calls
        self.mapping: dict[str, Any] = {"UUID": "m-1", "State": "Creating"}
        self.updates = 0

    def get_event_source_mapping(self, **call: Any) -> dict[str, Any]:
        return dict(self.mapping)

    def update_event_source_mapping(self, **call: Any) -> None:
        self.updates += 1
        if self.updates <= self.busy_calls:
            raise ClientError(
                {"Error": {"Code": "ResourceInUseException", "Message": "busy"}},
                "UpdateEventSourceMapping",
            )
        self.mapping.update(State="Enabled", FunctionResponseTypes=call["FunctionResponseTypes"])


def test_a_mapping_still_being_created_is_waited_for_not_skipped() -> None:
    lam = BusyThenReadyLambda(busy_calls=3)
    result = enable_partial_batch_responses(lam, "m-1", settle_seconds=60, sleep=lambda _: None)
    assert lam.updates == 4
    assert result.verified
    assert result.state == "Enabled"


def test_a_stage_without_its_policy_files_is_refused_before_any_aws_call(project: Path) -> None:
    (project / ".chalice" / "policy-dev-deliver.json").unlink()
    with pytest.raises(
        PreflightError, match=r"policy-dev-deliver.json is missing: run make policies"
    ):
        check_stage(STAGE, project)
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["EVENTS_QUEUE"] = "bad name!"
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreflightError, match="EVENTS_QUEUE"):
        check_stage(STAGE, project)


def test_a_batch_size_whose_settlement_cannot_fit_the_timeout_is_refused(project: Path) -> None:
    check_stage(STAGE, project)  # the shipped stage fits
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["BATCH_SIZE"] = "1000"
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreflightError, match=r"BATCH_SIZE=1000 .* lambda_timeout is 60 s"):
        check_stage(STAGE, project)
    config["stages"]["dev"]["lambda_functions"]["deliver"]["lambda_timeout"] = 300
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    check_stage(STAGE, project)


def test_teardown_refuses_to_delete_queues_holding_undelivered_events(
    clients: Clients, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = QueueSpec.for_stage(STAGE, project)
    _, dead_letters = ensure_queues(clients.sqs, spec)
    clients.sqs.send_message(QueueUrl=dead_letters.url, MessageBody="{}")
    args = ["teardown", "--stage", STAGE, "--project-dir", str(project)]
    assert deploy_stage.main(args, clients) == 2  # no --yes
    assert deploy_stage.main([*args, "--yes"], clients) == 1
    assert "pixel-relay-dev-events-dlq (1)" in capsys.readouterr().err
    assert len(clients.sqs.list_queues().get("QueueUrls", [])) == 2

    assert deploy_stage.main([*args, "--yes", "--force"], clients) == 0
    assert clients.sqs.list_queues().get("QueueUrls", []) == []
    assert deploy_stage.main([*args, "--yes"], clients) == 0  # nothing left: still fine
    assert "already gone" in capsys.readouterr().out
