"""docs/operations.md stays a runbook: every alarm the template creates has its entry with
what it means and the first three commands, and those commands run as written: `make`
targets (tests/docs/test_commands_run_as_written.py), and `aws` commands whose operation
and options exist (botocore's model, or the AWS CLI v2 command named here), after a check
that the AWS CLI is v2.
"""

from __future__ import annotations

import os
import re
import shlex
import stat
import subprocess
from pathlib import Path

import botocore.session
import pytest
from botocore import xform_name

from devtools.deploy.template import merge_template
from tests.docs.markdown import DOCS

RUNBOOK = DOCS / "operations.md"
# The AWS CLI's own options, valid on every command.
GLOBAL_OPTIONS = frozenset({"--query", "--output", "--region", "--profile"})
# AWS CLI v2 commands that are not API operations, with their options (`aws logs tail help`).
CUSTOM_COMMANDS = {("logs", "tail"): frozenset({"--since", "--filter-pattern", "--follow"})}


def runbook_text() -> str:
    return RUNBOOK.read_text()


def section(text: str, heading: str) -> str:
    start = text.index(heading)
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else None]


def code_blocks(text: str) -> list[str]:
    return re.findall(r"```sh\n(.*?)```", text, re.DOTALL)


def commands(block: str) -> list[str]:
    """The block's commands, continuation lines joined, comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", block)
    found: list[str] = []
    for line in joined.splitlines():
        line = line.split("  #")[0].strip()
        if line and not line.startswith("#"):
            found.append(line)
    return found


def prod_alarm_names() -> list[str]:
    """The alarms the template creates, for stage prod (the dev stage's, renamed: prod ships
    without its PROFILES_DOMAIN)."""
    resources = merge_template("dev")["Resources"]
    return [
        str(r["Properties"]["AlarmName"]).replace("pixel-relay-dev-", "pixel-relay-prod-")
        for r in resources.values()
        if r.get("Type") == "AWS::CloudWatch::Alarm"
    ]


def test_every_alarm_has_an_entry_with_three_commands() -> None:
    runbook = section(runbook_text(), "## Alarms: the runbook")
    for alarm in prod_alarm_names():
        suffix = alarm.removeprefix("pixel-relay-prod-")
        heading = f"### `pixel-relay-<stage>-{suffix}`"
        assert heading in runbook, f"no entry for {alarm}"
        entry = runbook[runbook.index(heading) :]
        entry = entry[: entry.find("\n### ", 1) if "\n### " in entry[1:] else None]
        [block] = code_blocks(entry)
        assert len(commands(block)) == 3, (alarm, commands(block))


def test_the_runbook_lists_exactly_the_stages_alarms() -> None:
    """Before: `--alarm-name-prefix pixel-relay-dev-` also listed stage dev-eu's alarms."""
    text = runbook_text()
    assert "--alarm-name-prefix" not in text
    [listing] = [
        command
        for block in code_blocks(section(text, "## Alarms: the runbook"))
        for command in commands(block)
        if "describe-alarms" in command
    ]
    words = shlex.split(listing)
    names = words[words.index("--alarm-names") + 1 :]
    names = names[: next((i for i, w in enumerate(names) if w.startswith("--")), len(names))]
    assert sorted(names) == sorted(prod_alarm_names())


def aws_commands() -> list[str]:
    found: list[str] = []
    for path in sorted(DOCS.rglob("*.md")):
        for block in code_blocks(path.read_text()):
            found += [c for c in commands(block) if c.startswith("aws ") and "|" not in c]
    return found


def test_every_documented_aws_command_names_an_operation_and_options_that_exist() -> None:
    session = botocore.session.get_session()
    problems: list[str] = []
    commands_seen = aws_commands()
    assert len(commands_seen) > 20
    for command in commands_seen:
        words = shlex.split(command.replace("$(", "").replace(")", ""))
        service, operation = words[1], words[2]
        options = {w.split("=")[0] for w in words[3:] if w.startswith("--")}
        if (service, operation) in CUSTOM_COMMANDS:
            unknown = options - CUSTOM_COMMANDS[(service, operation)] - GLOBAL_OPTIONS
        else:
            if service == "cloudformation" and operation in {"package", "deploy"}:
                continue  # the CLI's own cloudformation commands (aws cloudformation help)
            model = session.get_service_model(service)
            names = {xform_name(name, "-"): name for name in model.operation_names}
            if operation not in names and operation != "wait":
                problems.append(f"{command}: no operation {operation}")
                continue
            if operation == "wait":
                continue
            shape = model.operation_model(names[operation]).input_shape
            members = {xform_name(m, "-") for m in shape.members} if shape else set()
            allowed = {f"--{m}" for m in members} | {f"--no-{m}" for m in members}
            unknown = options - allowed - GLOBAL_OPTIONS
        if unknown:
            problems.append(f"{command}: unknown options {sorted(unknown)}")
    assert problems == []


def the_version_check() -> str:
    [check] = [
        command
        for block in code_blocks(runbook_text())
        for command in commands(block)
        if command.startswith("aws --version")
    ]
    return check


@pytest.mark.parametrize(
    ("version", "expected"),
    [
        ("aws-cli/2.22.1 Python/3.12.6 Linux/6.8 exe/x86_64", "AWS CLI v2: ok"),
        ("aws-cli/1.36.2 Python/3.11.9 Linux/6.8 botocore/1.35.2", "AWS CLI v2 needed"),
        (None, "AWS CLI v2 needed"),
    ],
)
def test_the_runbook_checks_for_aws_cli_v2(
    version: str | None, expected: str, tmp_path: Path
) -> None:
    """Before, the runbook needed v2 (`aws logs tail`) and did not check."""
    if version is not None:  # v1 prints its version on stderr
        aws = tmp_path / "aws"
        aws.write_text(f"#!/bin/sh\necho '{version}' >&2\n")
        aws.chmod(aws.stat().st_mode | stat.S_IXUSR)
    environment = dict(os.environ, PATH=f"{tmp_path}:/usr/bin:/bin")
    result = subprocess.run(
        ["bash", "-c", the_version_check()],
        env=environment,
        capture_output=True,
        text=True,
        check=True,
    )
    assert result.stdout.startswith(expected)
