"""`make rollback` on both deploy paths against moto's server.

CloudFormation path: the packaged template's stack on moto (its versions are the template's,
`AWS::Lambda::Version`); moto's CloudFormation has no `AWS::Lambda::Alias`, so the alias
`live` the template also makes is made here with Lambda's API, pointing at the stack's
version, as the stack would. A second deploy is played by publishing a version and moving
the alias, as SAM's AutoPublishAlias does on a stack update.

chalice deploy path: a throwaway git repository with two commits; the earlier one is
checked out in a worktree and its `make deploy` run there (a stand-in runner records what it
would run: the real one builds a .venv and calls AWS).
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from devtools.deploy import rollback
from devtools.offline import REGION
from tests.devtools.deploy_fixtures import Packaged, copy_project, deploy_stack

STAGE = "dev"
FUNCTIONS = ("pixel-relay-dev", "pixel-relay-dev-deliver")


def lambda_client(moto: str) -> Any:
    return boto3.client("lambda", endpoint_url=moto, region_name=REGION)


def publish(client: Any, function: str, commit: str) -> str:
    """A deploy of `commit` that changed the function: a new version (Lambda publishes none
    for an unchanged function, and neither does moto)."""
    client.update_function_configuration(FunctionName=function, Description=f"at {commit}")
    return str(
        client.publish_version(FunctionName=function, Description=f"pixel-relay dev {commit}")[
            "Version"
        ]
    )


def deployed_twice(moto: str, packaged: Packaged) -> dict[str, tuple[str, str]]:
    """The stack, its alias `live`, then a second deploy (commit 2222...): per function, the
    version of each deploy."""
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "true"})
    client = lambda_client(moto)
    versions: dict[str, tuple[str, str]] = {}
    for function in FUNCTIONS:
        [first] = [
            v["Version"]
            for v in client.list_versions_by_function(FunctionName=function)["Versions"]
            if v["Version"] != "$LATEST"
        ]
        client.create_alias(FunctionName=function, Name="live", FunctionVersion=first)
        second = publish(client, function, "222222222222")
        client.update_alias(FunctionName=function, Name="live", FunctionVersion=second)
        versions[function] = (first, second)
    return versions


def alias_version(moto: str, function: str) -> str:
    return str(lambda_client(moto).get_alias(FunctionName=function, Name="live")["FunctionVersion"])


def test_on_the_stack_path_the_alias_goes_back_one_version_in_one_call_each(
    moto: str, packaged: Packaged, capsys: pytest.CaptureFixture[str]
) -> None:
    versions = deployed_twice(moto, packaged)
    assert rollback.main(["--stage", STAGE, "--dry-run"]) == 0
    assert all(alias_version(moto, f) == versions[f][1] for f in FUNCTIONS)  # dry run

    assert rollback.main(["--stage", STAGE]) == 0
    for function in FUNCTIONS:
        assert alias_version(moto, function) == versions[function][0]
    out = capsys.readouterr().out
    assert f"pixel-relay-dev-deliver: alias live {versions[FUNCTIONS[1]][1]} ->" in out
    assert "rolled back in " in out
    assert "its next deploy moves the alias" in out
    # Nothing earlier than the first deploy: said, and nothing moved.
    with pytest.raises(rollback.RollbackError, match="no earlier one to go back to"):
        rollback.main(["--stage", STAGE])


def test_on_the_stack_path_a_commit_names_its_versions(moto: str, packaged: Packaged) -> None:
    versions = deployed_twice(moto, packaged)
    client = lambda_client(moto)
    for function in FUNCTIONS:  # a third deploy, which is live
        third = publish(client, function, "333333333333")
        client.update_alias(FunctionName=function, Name="live", FunctionVersion=third)
    assert rollback.main(["--stage", STAGE, "--commit", "2222222"]) == 0
    for function in FUNCTIONS:
        assert alias_version(moto, function) == versions[function][1]
    with pytest.raises(rollback.RollbackError, match="no published version was packaged from"):
        rollback.main(["--stage", STAGE, "--commit", "abcdef0"])


def test_a_stack_without_the_alias_says_how_to_get_one(moto: str, packaged: Packaged) -> None:
    """A stack packaged before versions were added: one deploy away from rollbacks."""
    deploy_stack(moto, packaged, {"REPORT_BATCH_ITEM_FAILURES": "true"})
    with pytest.raises(rollback.RollbackError, match="runs its functions without versions"):
        rollback.main(["--stage", STAGE])


# The chalice deploy path ----------------------------------------------------------------------


def git(repository: Path, *arguments: str) -> str:
    return subprocess.run(
        ["git", *arguments], cwd=repository, capture_output=True, text=True, check=True
    ).stdout.strip()


@pytest.fixture
def repository(tmp_path: Path) -> tuple[Path, str, str]:
    """A checkout with two commits: (its path, the first commit, the second)."""
    root = copy_project(tmp_path / "checkout")
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "user.email", "test@example.com")
    git(root, "config", "user.name", "test")
    (root / "RELEASE").write_text("first\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "first")
    first = git(root, "rev-parse", "HEAD")
    (root / "RELEASE").write_text("second\n")
    git(root, "commit", "-q", "-am", "second")
    return root, first, git(root, "rev-parse", "HEAD")


def test_on_the_chalice_path_a_commit_is_deployed_again_from_a_worktree(
    moto: str, repository: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    root, first, _ = repository
    ran: list[tuple[list[str], str, str]] = []

    def make(command: Sequence[str], directory: Path) -> int:
        ran.append(
            (
                list(command),
                (directory / "RELEASE").read_text(),
                git(directory, "rev-parse", "HEAD"),
            )
        )
        return 0

    argv = ["--stage", STAGE, "--commit", first[:7], "--project-dir", str(root)]
    assert rollback.main(argv, run=make) == 0
    assert ran == [(["make", "deploy", "STAGE=dev"], "first\n", first)]
    # The worktree is gone, and this checkout is as it was.
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1
    assert not (root / "deploy" / "build" / "rollback" / first[:12]).exists()
    assert (root / "RELEASE").read_text() == "second\n"
    assert f"stage dev: commit {first[:12]} deployed in " in capsys.readouterr().out


def test_a_failed_deploy_of_the_commit_fails_and_still_removes_the_worktree(
    moto: str, repository: tuple[Path, str, str]
) -> None:
    root, first, _ = repository
    argv = ["--stage", STAGE, "--commit", first, "--project-dir", str(root)]
    assert rollback.main(argv, run=lambda command, directory: 2) == 2
    assert git(root, "worktree", "list", "--porcelain").count("worktree ") == 1


def test_on_the_chalice_path_a_commit_is_required_and_must_exist(
    moto: str, repository: tuple[Path, str, str]
) -> None:
    root, _, _ = repository
    with pytest.raises(rollback.RollbackError, match=r"make rollback STAGE=dev COMMIT=<commit>"):
        rollback.main(["--stage", STAGE, "--project-dir", str(root)])
    with pytest.raises(rollback.RollbackError, match="git rev-parse"):
        rollback.main(["--stage", STAGE, "--commit", "nosuchcommit", "--project-dir", str(root)])
