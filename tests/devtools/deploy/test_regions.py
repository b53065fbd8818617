"""One place decides the AWS region (devtools.process.aws_region): AWS_REGION, else
AWS_DEFAULT_REGION, else the profile's, written to both variables so boto3 and Chalice
(which read AWS_DEFAULT_REGION only) and every child process use it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chalicelib.destinations import registry
from devtools.deploy.preflight import PreflightError, region_problems
from devtools.deploy.queues import ensure_queues
from devtools.offline import REGION
from devtools.paths import ROOT
from devtools.process import aws_region
from devtools.queue_spec import QueueSpec
from tests.devtools.deploy_fixtures import moto_clients


@pytest.fixture
def no_region(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Neither variable set; an AWS config file of our own (returned) with one profile."""
    monkeypatch.delenv("AWS_REGION", raising=False)
    monkeypatch.delenv("AWS_DEFAULT_REGION", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    config = tmp_path / "aws-config"
    config.write_text("[profile eu]\nregion = eu-west-3\n\n[profile bare]\noutput = json\n")
    monkeypatch.setenv("AWS_CONFIG_FILE", str(config))
    return config


def exported() -> tuple[str | None, str | None]:
    import os

    return os.environ.get("AWS_REGION"), os.environ.get("AWS_DEFAULT_REGION")


@pytest.mark.usefixtures("no_region")
def test_aws_region_alone_is_used_and_exported_for_boto3_and_chalice(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    assert aws_region() == "eu-central-1"
    assert exported() == ("eu-central-1", "eu-central-1")
    import boto3

    assert boto3.Session().region_name == "eu-central-1"


@pytest.mark.usefixtures("no_region")
def test_aws_default_region_alone_still_works(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "ap-south-1")
    assert aws_region() == "ap-south-1"
    assert exported() == ("ap-south-1", "ap-south-1")


@pytest.mark.usefixtures("no_region")
def test_aws_region_wins_over_aws_default_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """As in the AWS CLI v2 and the other SDKs."""
    monkeypatch.setenv("AWS_REGION", "us-west-2")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    assert aws_region() == "us-west-2"
    assert exported() == ("us-west-2", "us-west-2")


@pytest.mark.usefixtures("no_region")
def test_the_profiles_region_from_aws_profile_or_the_profile_option(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    assert aws_region(profile="eu") == "eu-west-3"
    monkeypatch.delenv("AWS_REGION")
    monkeypatch.delenv("AWS_DEFAULT_REGION")
    monkeypatch.setenv("AWS_PROFILE", "eu")
    assert aws_region() == "eu-west-3"
    assert exported() == ("eu-west-3", "eu-west-3")


@pytest.mark.usefixtures("no_region")
def test_no_region_anywhere_is_empty_and_exports_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    assert aws_region(profile="bare") == ""
    assert aws_region() == ""
    assert exported() == (None, None)


def without_default_region() -> dict[str, str]:
    import os

    environment = dict(os.environ)
    environment.pop("AWS_DEFAULT_REGION", None)
    environment["AWS_REGION"] = REGION
    return environment


def test_ops_and_deploy_commands_work_with_aws_region_alone(moto: str, project: Path) -> None:
    """Each command as a user runs it, in its own process, with only AWS_REGION set (before,
    boto3 stopped with "You must specify a region")."""
    clients = moto_clients(moto)
    ensure_queues(clients.sqs, QueueSpec.for_stage("dev", project))
    for command in (
        ["devtools.ops", "dlq", "--stage", "dev", "--project-dir", str(project)],
        ["devtools.deploy.stage", "verify", "--stage", "dev", "--project-dir", str(project)],
    ):
        result = subprocess.run(
            [sys.executable, "-m", *command],
            cwd=ROOT,
            env=without_default_region(),
            capture_output=True,
            text=True,
            check=False,
        )
        assert "region" not in result.stderr.lower(), result.stderr
        if command[0] == "devtools.ops":
            assert result.returncode == 0, result.stderr
            assert "pixel-relay-dev-events-dlq" in result.stdout
        else:  # queues as specified; no functions deployed yet, which is what it reports
            assert "as specified" in result.stdout
            assert "pixel-relay-dev-deliver: does not exist: make deploy STAGE=dev" in (
                result.stderr
            )


# A destination whose service is not offered in the region ------------------------------------


def a_region_without(service: str) -> str | None:
    """A region of the aws partition (one SQS is offered in) where `service` is not."""
    import boto3

    session = boto3.session.Session()
    missing = set(session.get_available_regions("sqs")) - set(
        session.get_available_regions(service)
    )
    return min(missing) if missing else None


@pytest.mark.parametrize("name", registry.known())
def test_each_destination_is_checked_through_its_plugins_service(name: str) -> None:
    service = registry.plugin(name).service
    region = a_region_without(service) if service else None
    environment = {"DESTINATIONS": name}
    if region is None:  # offered in every region SQS is
        assert region_problems(environment, "us-east-1") == []
        return
    [line] = region_problems(environment, region)
    assert line.startswith(f"DESTINATIONS names {name}, but {service} is not offered in {region}")
    assert "us-east-1" in line  # offered there: the regions that offer it are named


def test_customer_profiles_the_default_is_not_offered_in_eu_west_1() -> None:
    [line] = region_problems({}, "eu-west-1")
    assert line == (
        "DESTINATIONS names customer-profiles, but customer-profiles is not offered in"
        " eu-west-1; it is in af-south-1, ap-northeast-1, ap-northeast-2, ap-southeast-1,"
        " ap-southeast-2, ca-central-1, eu-central-1, eu-west-2, us-east-1, us-west-2:"
        " deploy the stage in one of those (AWS_REGION), or choose other DESTINATIONS"
    )
    assert region_problems({}, "eu-central-1") == []
    assert region_problems({}, "eu-west-2") == []
    everywhere = [
        name
        for name in registry.known()
        if (service := registry.plugin(name).service) and a_region_without(service) is None
    ]
    assert everywhere  # the stream destinations: offered in every region
    assert region_problems({"DESTINATIONS": everywhere[0]}, "eu-west-1") == []


def run_module(module: str, *args: str, region: str) -> subprocess.CompletedProcess[str]:
    import os

    environment = dict(os.environ, AWS_REGION=region, AWS_DEFAULT_REGION=region)
    return subprocess.run(
        [sys.executable, "-m", module, *args],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        check=False,
    )


def test_deploy_verify_and_profiles_setup_refuse_the_region_before_any_aws_call(
    moto: str, project: Path
) -> None:
    """Before, `make deploy` in eu-west-1 succeeded and every batch failed and parked; verify
    said ok. Now each command stops with one line, and no queue is made."""
    clients = moto_clients(moto)
    for module, args in (
        ("devtools.deploy.stage", ["deploy", "--stage", "dev"]),
        ("devtools.deploy.verify", ["--stage", "dev"]),
        ("devtools.deploy.profiles_setup", ["--stage", "dev"]),
    ):
        project_dir = [] if module.endswith("profiles_setup") else ["--project-dir", str(project)]
        result = run_module(module, *args, *project_dir, region="eu-west-1")
        assert result.returncode != 0, (module, result.stdout)
        [line] = result.stderr.strip().splitlines()
        assert line.startswith(
            "stage dev: DESTINATIONS names customer-profiles, but customer-profiles is not"
            " offered in eu-west-1; it is in af-south-1,"
        ), (module, line)
    assert clients.sqs.list_queues().get("QueueUrls", []) == []


def test_package_refuses_the_region_before_building_anything(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before, `make package` in eu-west-1 built the bundle and failed on cfn-lint's E3006."""
    from devtools.deploy import package

    monkeypatch.setenv("AWS_REGION", "eu-west-1")
    with pytest.raises(PreflightError, match=r"customer-profiles is not offered in eu-west-1"):
        package.main(["--stage", "dev", "--out", str(tmp_path / "build"), "--merge-only"])
    assert not (tmp_path / "build").exists()
    monkeypatch.setenv("AWS_REGION", "eu-central-1")
    package.main(["--stage", "dev", "--out", str(tmp_path / "build"), "--merge-only"])
    assert (tmp_path / "build" / "merge.json").exists()
