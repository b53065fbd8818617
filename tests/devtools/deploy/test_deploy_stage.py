"""The `chalice deploy` path against moto's server: queues created and corrected idempotently,
the real `chalice deploy` (which moto stops at ImportRestApi, DESIGN.md) still leaves a
mapping with ReportBatchItemFailures on and verified; deploying again, from another clone or
after a failure converges on one of each resource; teardown finds the stage in AWS and
guards undelivered events; preflight refuses before any AWS call.

moto cannot import Swagger 2.0 (ImportRestApi, PutRestApi): the convergence tests run the
real chalice CLI with only those two calls filled in (tests/devtools/deploy/chalice_on_moto.py).
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError

from devtools.deploy import stage as deploy_stage
from devtools.deploy.bytecode import cache_name
from devtools.deploy.mapping import consumer_function_name, enable_partial_batch_responses
from devtools.deploy.preflight import PreflightError, check_stage
from devtools.deploy.queues import ensure_queues
from devtools.deploy.stage import Clients
from devtools.offline import REGION
from devtools.paths import ROOT
from devtools.queue_spec import QueueSpec
from tests.devtools.deploy_fixtures import (
    STACK,
    Packaged,
    chalice_on_moto,
    copy_project,
    deploy_stack,
    lambda_role,
    moto_clients,
    stage_resources,
)

STAGE = "dev"


@pytest.fixture
def clients(moto: str) -> Clients:
    return moto_clients(moto)


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

    # Idempotent: the mapping step alone, and the read-only verify, both agree; the stage
    # ships REPORT_BATCH_ITEM_FAILURES=false, which is safe with the setting: a note.
    assert (
        deploy_stage.main(["mapping", "--stage", STAGE, "--project-dir", str(project)], clients)
        == 0
    )
    assert "ReportBatchItemFailures already on and verified" in capfd.readouterr().out
    assert (
        deploy_stage.main(["verify", "--stage", STAGE, "--project-dir", str(project)], clients) == 0
    )
    output = capfd.readouterr()
    assert "ok   queues pixel-relay-dev-events and pixel-relay-dev-events-dlq" in output.out
    assert not output.err
    [note] = [
        line for line in output.out.splitlines() if "REPORT_BATCH_ITEM_FAILURES false" in line
    ]
    assert note.endswith("then make deploy STAGE=dev")


def test_verify_fails_while_the_mapping_lacks_the_setting(
    clients: Clients, project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    spec = QueueSpec.for_stage(STAGE, project)
    events, _ = ensure_queues(clients.sqs, spec)
    iam = boto3.client("iam", endpoint_url=clients.sqs.meta.endpoint_url, region_name=REGION)
    role = lambda_role(iam, "deliver-role")
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


def test_a_dedupe_memory_the_consumer_cannot_hold_is_refused_naming_both(project: Path) -> None:
    """2,000,000 remembered deliveries measured 279 MB in the issue (more at worst): more
    than a 256 MB consumer. The stage is refused, naming both settings."""
    config = json.loads((project / ".chalice" / "config.json").read_text())
    config["stages"]["dev"]["environment_variables"]["DEDUPE_MEMORY_SIZE"] = "2000000"
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreflightError) as refused:
        check_stage(STAGE, project)
    assert "DEDUPE_MEMORY_SIZE" in str(refused.value)
    assert "256 MB (the deliver function's lambda_memory_size" in str(refused.value)
    config["stages"]["dev"]["lambda_functions"]["deliver"]["lambda_memory_size"] = 1280
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    check_stage(STAGE, project)
    del config["stages"]["dev"]["lambda_functions"]["deliver"]["lambda_memory_size"]
    config["stages"]["dev"]["environment_variables"]["DEDUPE_MEMORY_SIZE"] = "300000"
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    with pytest.raises(PreflightError, match=r"consumer's 128 MB \(the deliver function's"):
        check_stage(STAGE, project)  # Chalice's default memory: 128 MB


SPEC_QUEUES = ["pixel-relay-dev-events", "pixel-relay-dev-events-dlq"]
ONE_STAGE = {
    "functions": ["pixel-relay-dev", "pixel-relay-dev-deliver"],
    "roles": ["pixel-relay-dev-api_handler", "pixel-relay-dev-deliver"],
    "queues": SPEC_QUEUES,
}


def deploy_args(project: Path) -> list[str]:
    return ["deploy", "--stage", STAGE, "--project-dir", str(project)]


def assert_one_of_each(clients: Clients) -> tuple[str, str]:
    """One stage's worth of everything; its API id and mapping UUID."""
    found = stage_resources(clients)
    assert {k: v for k, v in found.items() if k in ONE_STAGE} == ONE_STAGE
    [api] = found["rest_apis"]
    [mapping] = found["mappings"]
    described = clients.lambda_client.get_event_source_mapping(UUID=mapping)
    assert described["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    return api, mapping


def recorded_api(project: Path) -> str:
    document = json.loads((project / ".chalice" / "deployed" / "dev.json").read_text())
    [api] = [r for r in document["resources"] if r["resource_type"] == "rest_api"]
    return str(api["rest_api_id"])


def test_deploy_again_and_from_a_second_clone_keeps_one_api_one_mapping_one_set(
    clients: Clients,
    project: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    api, mapping = assert_one_of_each(clients)
    assert f"https://{api}.execute-api.us-east-1.amazonaws.com/api/ (new" in capfd.readouterr().out

    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    assert assert_one_of_each(clients) == (api, mapping)
    assert f"{api}.execute-api.us-east-1.amazonaws.com/api/ (unchanged)" in capfd.readouterr().out

    # Another machine: a fresh copy of the project, no .chalice/deployed. Its region comes
    # from AWS_REGION alone (boto3 and Chalice read only AWS_DEFAULT_REGION), and its
    # clients are made by the command itself.
    second = copy_project(tmp_path / "second-clone")
    assert not (second / ".chalice" / "deployed").exists()
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_REGION", REGION)
    assert deploy_stage.main(deploy_args(second), chalice=chalice_on_moto) == 0
    assert assert_one_of_each(clients) == (api, mapping)
    assert recorded_api(second) == api
    out = capfd.readouterr().out
    assert (
        "found in AWS (us-east-1): api_handler_role, api_handler, deliver_role, deliver,"
        " deliver-sqs-event-source, rest_api; written to .chalice/deployed/dev.json"
    ) in out
    assert "(unchanged)" in out


def test_deploy_after_failures_half_way_adopts_what_they_created(
    clients: Clients, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first run is plain chalice against moto: role, functions, mapping, then it dies at
    ImportRestApi. The second dies just after its API exists (injected), before Chalice
    records anything. The third succeeds on the same API and the same mapping."""
    assert deploy_stage.main(deploy_args(project), clients) == 1  # real chalice, no stub
    [first_mapping] = stage_resources(clients)["mappings"]
    assert stage_resources(clients)["rest_apis"] == []
    assert not (project / ".chalice" / "deployed" / "dev.json").read_text().count("rest_api")

    monkeypatch.setenv("CHALICE_ON_MOTO_FAIL", "after-import")
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 1
    [half_made_api] = stage_resources(clients)["rest_apis"]
    assert stage_resources(clients)["mappings"] == [first_mapping]

    monkeypatch.delenv("CHALICE_ON_MOTO_FAIL")
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    assert assert_one_of_each(clients) == (half_made_api, first_mapping)
    assert recorded_api(project) == half_made_api


def test_without_adoption_chalice_would_make_a_second_api_and_mapping(
    clients: Clients, project: Path, tmp_path: Path
) -> None:
    """The failure this guards against, shown on the same moto: plain `chalice deploy` from a
    clone without .chalice/deployed makes a second API (new URL) and a second mapping."""
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    second = copy_project(tmp_path / "second-clone")
    assert chalice_on_moto(["deploy", "--stage", STAGE], second) == 0
    found = stage_resources(clients)
    assert len(found["rest_apis"]) == 2
    assert len(found["mappings"]) == 2
    # ...and the next deploy_stage run repairs it: one mapping, the first API kept (its URL
    # is the one in the tag); the other API is named for the operator, not deleted.
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    after = stage_resources(clients)
    assert len(after["mappings"]) == 1
    assert recorded_api(project) == found["rest_apis"][0]


def test_teardown_from_another_clone_deletes_what_deploy_made_and_leaves_a_queue_with_messages(
    clients: Clients, project: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    dead_letters = clients.sqs.get_queue_url(QueueName="pixel-relay-dev-events-dlq")["QueueUrl"]
    clients.sqs.send_message(QueueUrl=dead_letters, MessageBody="{}")
    capsys.readouterr()

    elsewhere = copy_project(tmp_path / "second-clone")  # no local record at all
    args = ["teardown", "--stage", STAGE, "--project-dir", str(elsewhere), "--yes"]
    assert deploy_stage.main(args, clients) == 1
    output = capsys.readouterr()
    assert stage_resources(clients) == {
        "functions": [],
        "roles": [],
        "mappings": [],
        "rest_apis": [],
        "queues": ["pixel-relay-dev-events-dlq"],
    }
    assert "queue pixel-relay-dev-events-dlq: holds 1 message(s), undelivered events" in output.out
    assert f"aws sqs delete-queue --queue-url {dead_letters}" in output.out
    assert "left: queue pixel-relay-dev-events-dlq (holds messages)" in output.err

    # Replayed or not, --force deletes it; then there is nothing left, and that is fine.
    assert deploy_stage.main([*args, "--force"], clients) == 0
    assert stage_resources(clients)["queues"] == []
    assert deploy_stage.main(args, clients) == 0
    assert "nothing to delete" in capsys.readouterr().out


def test_teardown_asks_first_and_deletes_nothing_without_a_yes(
    clients: Clients, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    before = stage_resources(clients)
    args = ["teardown", "--stage", STAGE, "--project-dir", str(project)]
    questions: list[str] = []

    def answer(reply: bool | None) -> deploy_stage.Confirm:
        def confirm(question: str) -> bool | None:
            questions.append(question)
            return reply

        return confirm

    assert deploy_stage.main(args, clients, confirm=answer(None)) == 2  # no terminal
    assert "no terminal to ask on. Add --yes (make teardown STAGE=dev YES=1)" in (
        capsys.readouterr().err
    )
    assert deploy_stage.main(args, clients, confirm=answer(False)) == 2
    assert stage_resources(clients) == before
    assert deploy_stage.main(args, clients, confirm=answer(True)) == 0
    assert questions == ["Delete these? [y/N] "] * 3
    assert stage_resources(clients) == {k: [] for k in before}
    assert not (project / ".chalice" / "deployed" / "dev.json").exists()


def test_make_teardown_passes_yes_only_when_asked() -> None:
    def recipe(*variables: str) -> str:
        dry = subprocess.run(
            ["make", "-n", "teardown", "STAGE=dev", *variables],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        )
        [line] = [line for line in dry.stdout.splitlines() if "devtools.deploy.stage" in line]
        return line

    assert "--yes" not in recipe()
    assert recipe("YES=1").endswith("teardown --stage dev --yes")


def run_deploy_command(project: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "devtools.deploy.stage",
            "deploy",
            "--stage",
            STAGE,
            *extra,
            "--project-dir",
            str(project),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )


def test_a_stage_without_its_destination_settings_stops_before_any_queue_is_made(
    clients: Clients, project: Path
) -> None:
    config = json.loads((project / ".chalice" / "config.json").read_text())
    # The dev stage's destination is Customer Profiles (the default): its domain left empty.
    config["stages"]["dev"]["environment_variables"]["PROFILES_DOMAIN"] = ""
    (project / ".chalice" / "config.json").write_text(json.dumps(config))
    result = run_deploy_command(project)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("stage dev: PROFILES_DOMAIN: "), line
    assert clients.sqs.list_queues().get("QueueUrls", []) == []


def test_no_region_or_no_credentials_is_one_line_before_any_aws_call(
    clients: Clients, project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    result = run_deploy_command(project)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or region in your profile"
    ]
    monkeypatch.setenv("AWS_REGION", REGION)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    result = run_deploy_command(project)
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("no AWS credentials: set AWS_PROFILE")
    assert clients.sqs.list_queues().get("QueueUrls", []) == []


def test_an_unknown_profile_is_named(project: Path) -> None:
    result = run_deploy_command(project, "--profile", "nobody")
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "The config profile (nobody) could not be found: check AWS_PROFILE / --profile and"
        " ~/.aws/config"
    ]


def run_on_a_terminal(command: list[str], reply: str) -> tuple[int, str]:
    """`command` with a pseudo-terminal as stdin/stdout (as from `make teardown`); `reply`
    typed once the question shows."""
    import os
    import pty
    import select

    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, on the terminal
        os.chdir(ROOT)
        os.execv(sys.executable, [sys.executable, *command])
    output, replied = b"", False
    while True:
        ready, _, _ = select.select([fd], [], [], 60)
        if not ready:
            break
        try:
            chunk = os.read(fd, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
        if not replied and b"[y/N]" in output:
            os.write(fd, reply.encode() + b"\n")
            replied = True
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output.decode(errors="replace")


def test_teardown_asks_on_the_terminal(clients: Clients, project: Path) -> None:
    ensure_queues(clients.sqs, QueueSpec.for_stage(STAGE, project))
    command = ["-m", "devtools.deploy.stage", "teardown", "--stage", STAGE]
    command += ["--project-dir", str(project)]
    status, output = run_on_a_terminal(command, "n")
    assert status == 2, output
    assert "queue pixel-relay-dev-events-dlq\r\n" in output
    assert "nothing deleted" in output
    assert len(clients.sqs.list_queues().get("QueueUrls", [])) == 2

    status, output = run_on_a_terminal(command, "y")
    assert status == 0, output
    assert "queue pixel-relay-dev-events: deleted" in output
    assert clients.sqs.list_queues().get("QueueUrls", []) == []


def test_teardown_of_dev_leaves_stage_dev_eu_whose_names_start_alike(
    clients: Clients, project: Path
) -> None:
    """`pixel-relay-dev-eu-deliver` starts with `pixel-relay-dev-`: Chalice's stage tag, not
    the name, says whose it is."""
    iam = clients.iam
    role = iam.create_role(
        RoleName="pixel-relay-dev-eu-deliver",
        AssumeRolePolicyDocument=json.dumps({"Version": "2012-10-17", "Statement": []}),
    )["Role"]["Arn"]
    for name, stage in (
        ("pixel-relay-dev-eu-deliver", "dev-eu"),
        ("pixel-relay-dev-deliver", "dev"),
    ):
        clients.lambda_client.create_function(
            FunctionName=name,
            Runtime="python3.11",
            Role=role,
            Handler="app.deliver",
            Code={"ZipFile": _zip_with("app.py", "def deliver(event, context):\n    pass\n")},
            Tags={"aws-chalice": f"version=1.34.0:stage={stage}:app=pixel-relay"},
        )
    args = ["teardown", "--stage", STAGE, "--project-dir", str(project), "--yes"]
    assert deploy_stage.main(args, clients) == 0
    assert stage_resources(clients)["functions"] == ["pixel-relay-dev-eu-deliver"]
    assert stage_resources(clients)["roles"] == ["pixel-relay-dev-eu-deliver"]


# Deploy ends as verify would check it ---------------------------------------------------------


def test_the_chalice_path_caps_the_consumer_like_the_stack_and_deploy_ends_verified(
    clients: Clients, project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Before, the chalice deploy path's mapping had no MaximumConcurrency unless
    MAX_CONCURRENCY was set (5 on the stack path), and deploy never read the mapping's
    batch settings back."""
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    [mapping] = clients.lambda_client.list_event_source_mappings()["EventSourceMappings"]
    assert mapping["ScalingConfig"] == {"MaximumConcurrency": 5}
    assert (mapping["BatchSize"], mapping["MaximumBatchingWindowInSeconds"]) == (100, 1)
    out = capfd.readouterr().out
    assert "ok   queues pixel-relay-dev-events and pixel-relay-dev-events-dlq" in out
    assert "ok   consumer function pixel-relay-dev-deliver: exists" in out


def test_deploy_fails_when_what_it_deployed_does_not_verify(
    clients: Clients, project: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """A mapping disabled by hand: chalice deploy updates it and leaves it disabled, and the
    events wait on the queue. Before, deploy said nothing and exited 0."""
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    [mapping] = clients.lambda_client.list_event_source_mappings()["EventSourceMappings"]
    clients.lambda_client.update_event_source_mapping(UUID=mapping["UUID"], Enabled=False)
    capfd.readouterr()
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 1
    err = capfd.readouterr().err
    assert f"FAIL mapping {mapping['UUID']}: Disabled, events wait on pixel-relay-dev-events" in err
    assert "deployed, but not as its settings say" in err


def test_deploy_refuses_a_queue_encrypted_with_a_key_the_stage_does_not_name(
    clients: Clients, project: Path
) -> None:
    """Before: "already as specified", exit 0, while verify called it "every send fails"."""
    spec = QueueSpec.for_stage(STAGE, project)
    events, _ = ensure_queues(clients.sqs, spec)
    kms = boto3.client("kms", endpoint_url=clients.sqs.meta.endpoint_url, region_name=REGION)
    key = kms.create_key()["KeyMetadata"]["Arn"]
    clients.sqs.set_queue_attributes(QueueUrl=events.url, Attributes={"KmsMasterKeyId": key})
    with pytest.raises(SystemExit) as stopped:
        deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto)
    assert str(stopped.value) == (
        f"queue pixel-relay-dev-events: encrypted with KMS key {key}, which the stage does not"
        " name, so the functions' roles are not granted kms:GenerateDataKey/kms:Decrypt on it"
        f" and every send fails: set QUEUE_KMS_KEY={key} in the stage's environment_variables,"
        " then make policies and redeploy (deploy changed nothing)"
    )
    assert stage_resources(clients)["functions"] == []
    assert attributes(clients.sqs, spec.events_queue)["KmsMasterKeyId"] == key


# Teardown on the stack path, and the log groups a stack would collide with -------------------


def test_teardown_of_a_stage_deployed_with_cloudformation_deletes_nothing_and_names_the_stack(
    clients: Clients, moto: str, packaged: Packaged, capsys: pytest.CaptureFixture[str]
) -> None:
    """Before, it planned to delete the stack's functions (and its kept queues once empty)
    out from under the stack."""
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "true"})
    before = stage_resources(clients)
    dead_letters = clients.sqs.get_queue_url(QueueName="pixel-relay-dev-events-dlq")["QueueUrl"]
    clients.sqs.send_message(QueueUrl=dead_letters, MessageBody="{}")
    args = ["teardown", "--stage", STAGE, "--yes", "--force", "--delete-logs"]
    assert deploy_stage.main(args, clients) == 1
    assert stage_resources(clients) == before
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        f"stage dev in us-east-1 is CloudFormation stack {STACK}: teardown deletes nothing"
    )
    assert out[1] == f"  aws cloudformation delete-stack --stack-name {STACK} --region us-east-1"
    kept = [line for line in out if line.startswith("  queue ")]
    assert [line.split(" (")[0] for line in kept] == [
        "  queue pixel-relay-dev-events-dlq",
        "  queue pixel-relay-dev-events",
    ]
    assert "holds 1 message(s), undelivered events" in kept[0]
    # The stack's own record of the queue (its physical id), which SQS answers to.
    recorded = "https://sqs.us-east-1.amazonaws.com/123456789012/pixel-relay-dev-events-dlq"
    assert f"aws sqs delete-queue --queue-url {recorded}" in kept[0]


def test_teardown_finds_a_stack_of_another_name_by_its_functions_tag(
    clients: Clients, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    role = lambda_role(clients.iam, "pixel-relay-dev-deliver")
    clients.lambda_client.create_function(
        FunctionName="pixel-relay-dev-deliver",
        Runtime="python3.11",
        Role=role,
        Handler="app.deliver",
        Code={"ZipFile": _zip_with("app.py", "def deliver(event, context):\n    pass\n")},
        Tags={
            "aws-chalice": "version=1.34.0:stage=dev:app=pixel-relay",
            "aws:cloudformation:stack-name": "my-relay",
        },
    )
    args = ["teardown", "--stage", STAGE, "--project-dir", str(project), "--yes"]
    assert deploy_stage.main(args, clients) == 1
    assert "is CloudFormation stack my-relay" in capsys.readouterr().out
    assert stage_resources(clients)["functions"] == ["pixel-relay-dev-deliver"]


def test_teardown_deletes_the_log_groups_a_stack_would_collide_with_when_asked(
    clients: Clients, project: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Moving a stage from make deploy to the stack: the template creates the functions' log
    groups, and CloudFormation fails on the ones teardown kept. Now teardown says so, and
    ARGS=--delete-logs deletes them (before, there was no way but by hand)."""
    assert deploy_stage.main(deploy_args(project), clients, chalice=chalice_on_moto) == 0
    groups = ["/aws/lambda/pixel-relay-dev", "/aws/lambda/pixel-relay-dev-deliver"]
    for group in groups:  # what Lambda writes on the first invocation
        clients.logs.create_log_group(logGroupName=group)
    args = ["teardown", "--stage", STAGE, "--project-dir", str(project), "--yes"]
    assert deploy_stage.main(args, clients) == 0
    out = capsys.readouterr().out
    assert (
        "A CloudFormation stack of this stage creates it and fails while it exists: delete it"
        " with make teardown STAGE=dev YES=1 ARGS=--delete-logs"
    ) in out
    assert deploy_stage.main([*args, "--delete-logs"], clients) == 0
    out = capsys.readouterr().out
    for group in groups:
        assert f"log group {group}: deleted" in out
        clients.logs.create_log_group(logGroupName=group)  # as the stack would: no collision
