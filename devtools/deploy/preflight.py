"""Checks both deploy paths run first, so a stage that cannot work is refused before any AWS
call or package build, with the fix named."""

from __future__ import annotations

from pathlib import Path

from chalicelib.config import ConfigError, Reader, Settings
from chalicelib.delivery import settlement_problem
from devtools.deploy.policies import policy_files, render
from devtools.deploy.settings import DeploySettings, DeploySettingsError
from devtools.paths import CHALICE_DIR, ROOT
from devtools.queue_spec import chalice_config, consumer_timeout_seconds, stage_environment


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
    if problems:
        raise PreflightError("\n".join(problems))
    return settings
