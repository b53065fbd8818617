"""Checks both deploy paths run first, so a stage that cannot work is refused before any AWS
call or package build, with the fix named: one line a problem, no traceback.

In order: the stage's settings as both functions read them, each configured destination's
own settings (parsed by its plug-in, as the consumer parses them), `deploy/stages.json`, the
policy files (present, and what `make policies` writes now), the consumer's settlement
deadline and its memory of deliveries against its lambda_memory_size; then, for commands
that call AWS, the region and credentials (`check_aws`) and whether every configured
destination's service is offered in that region (`check_region`: botocore's endpoint data,
read locally; Customer Profiles, the default, is offered in ten regions only, eu-west-1 not
among them).
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError, ProfileNotFound, UnknownRegionError

from chalicelib.config import Settings
from chalicelib.dedupe import DedupeSettings, memory_problem
from chalicelib.destinations import registry
from chalicelib.env import ConfigError, Reader
from chalicelib.settlement import settlement_problem
from devtools.deploy.policies import policy_files, render
from devtools.deploy.settings import DeploySettings, DeploySettingsError
from devtools.paths import CHALICE_DIR, ROOT
from devtools.process import aws_region
from devtools.queue_spec import (
    chalice_config,
    consumer_memory_mb,
    consumer_timeout_seconds,
    stage_environment,
)

OUR_FUNCTIONS = frozenset({"api_handler", "deliver"})  # policies.py writes their files


class PreflightError(SystemExit):
    """A stage that must not be deployed as it is; the message says what to change."""


def policy_file_problems(stage: str, root: Path = ROOT) -> list[str]:
    """Missing or stale per-function policy files for `stage` (`make policies` fixes them)."""
    stage_config = chalice_config(root).get("stages", {}).get(stage, {})
    expected = policy_files(root)
    problems: list[str] = []
    if stage_config.get("autogen_policy") is not False:
        problems.append(
            f"stage {stage}: autogen_policy must be false (Chalice's policy misses chalicelib/)"
        )
    for function, settings in stage_config.get("lambda_functions", {}).items():
        name = settings.get("iam_policy_file")
        if not name:
            problems.append(f"stage {stage}: function {function} has no iam_policy_file")
            continue
        path = root / CHALICE_DIR / name
        if path not in expected:
            if function in OUR_FUNCTIONS:  # its policy could not be computed
                problems.append(f"{path.name} cannot be written: run make policies")
            continue  # not one of ours (a function added later); Chalice reads it as it is
        if not path.exists():
            problems.append(f"{path.name} is missing: run make policies")
        elif path.read_text() != render(expected[path]):
            problems.append(f"{path.name} is stale: run make policies")
    return problems


def check_stage(stage: str, root: Path = ROOT) -> Settings:
    """The stage's settings as the functions will read them; raise if it cannot deploy."""
    try:
        settings = Settings.from_env(stage_environment(stage, root))
        registry.configure(settings.destinations, stage_environment(stage, root))
        dedupe = DedupeSettings.from_env(stage_environment(stage, root))
        DeploySettings.for_stage(stage, root)
    except (ConfigError, DeploySettingsError) as error:
        raise PreflightError(f"stage {stage}: {error}") from None
    problems = policy_file_problems(stage, root)
    settlement = settlement_problem(
        settings.wiring.batch_size,
        len(settings.destinations),
        settings.report_batch_item_failures,
        Reader(stage_environment(stage, root)).delivery_timeout(),
        consumer_timeout_seconds(stage, root),
    )
    if settlement is not None:
        problems.append(f"stage {stage}: {settlement}")
    memory = memory_problem(
        dedupe.memory_size,
        consumer_memory_mb(stage, root),
        "the deliver function's lambda_memory_size in .chalice/config.json",
    )
    if memory is not None:
        problems.append(f"stage {stage}: DEDUPE_MEMORY_SIZE={dedupe.memory_size}: {memory}")
    if problems:
        raise PreflightError("\n".join(problems))
    for warning in stage_warnings(settings):
        print(f"warning: stage {stage}: {warning}", file=sys.stderr)
    return settings


def stage_warnings(settings: Settings) -> list[str]:
    """Settings that deploy but open a door (docs/threat-model.md): named on every deploy
    and package, so turning one on is never silent."""
    warnings: list[str] = []
    if settings.hit_policy.allow_anonymous_user_id:
        warnings.append(
            "ALLOW_ANONYMOUS_USER_ID=true lets any page link any endpoint to any user id"
            " (and key objects to any user's profile in Customer Profiles): anyone who knows"
            " a user id can write to that user. Prefer signed hits (docs/signed-hits.md)"
        )
    return warnings


def check_aws(profile: str | None = None) -> str:
    """The region (exported for Chalice and every child process), and credentials present.

    Local only: an expired or revoked key shows at the first call (see `check_identity`)."""
    import boto3

    try:
        region = aws_region(profile)
        session = boto3.Session(profile_name=profile)
        credentials = session.get_credentials()
    except ProfileNotFound as error:
        raise PreflightError(f"{error}: check AWS_PROFILE / --profile and ~/.aws/config") from None
    except BotoCoreError as error:
        raise PreflightError(f"AWS credentials cannot be read: {error}") from None
    if not region:
        raise PreflightError(
            "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or region in your profile"
        )
    if credentials is None:
        raise PreflightError(
            "no AWS credentials: set AWS_PROFILE (aws configure / aws sso login) or"
            " AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"
        )
    return region


def region_problems(environ: Mapping[str, str], region: str) -> list[str]:
    """One line for each configured destination whose service (its plug-in's `service`)
    botocore's endpoint data does not offer in `region`, naming the regions that offer it.
    Local: no AWS call."""
    import boto3

    session = boto3.session.Session()
    try:
        partition = session.get_partition_for_region(region)
    except UnknownRegionError:
        return [f"region {region!r} is no AWS region botocore knows: check AWS_REGION"]
    problems: list[str] = []
    for name in registry.configured_names(environ):
        service = registry.plugin(name).service
        if service is None:
            continue
        offered = session.get_available_regions(service, partition_name=partition)
        if region in offered:
            continue
        where = ", ".join(sorted(offered)) or f"no region of partition {partition}"
        problems.append(
            f"DESTINATIONS names {name}, but {service} is not offered in {region}; it is in"
            f" {where}: deploy the stage in one of those (AWS_REGION), or choose other"
            " DESTINATIONS"
        )
    return problems


def check_region(stage: str, region: str, root: Path = ROOT) -> None:
    """Refuse, before any AWS call, a stage whose destinations do not exist in `region`."""
    problems = region_problems(stage_environment(stage, root), region)
    if problems:
        raise PreflightError("\n".join(f"stage {stage}: {problem}" for problem in problems))


def check_identity(sts: Any) -> str:
    """The first AWS call: the account the credentials belong to, or one line saying why not."""
    try:
        return str(sts.get_caller_identity()["Account"])
    except (ClientError, BotoCoreError) as error:
        raise PreflightError(
            f"AWS refused the credentials ({error}): renew them (aws sso login, or new keys)"
        ) from None
