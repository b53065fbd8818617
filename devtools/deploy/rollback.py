"""Roll a stage back, on either deploy path.

    make rollback STAGE=prod                  # stack path: the alias to the previous version
    make rollback STAGE=prod COMMIT=4f1c2e9   # either path: back to what that commit deployed
    make rollback STAGE=prod ARGS=--dry-run   # what it would do

(`.venv/bin/python -m devtools.deploy.rollback --stage prod [--commit C]` underneath.)

**CloudFormation path.** Every deploy that changes a function publishes a version of it,
described with the commit it was packaged from, and moves the alias `live` to it; the API
and the event source mapping invoke `live`, and old versions are kept
(`devtools.deploy.template.published`). Rolling back moves `live` of both functions to the
version before the one it points at (or to `--commit`'s): one `UpdateAlias` call each,
effective for the next request, no build, no stack update. The stack still records the
newer version: its next deploy moves `live` to whatever that deploy packages.

**`chalice deploy` path.** Chalice has no versions or aliases, so the earlier commit is
deployed again: checked out in a git worktree (`deploy/build/rollback/<commit>`) and deployed
with that commit's own `make deploy` (its own `.venv`, locks and tooling), then the worktree
is removed. This takes as long as a deploy (docs/deploy.md#rolling-back).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from devtools.deploy.preflight import check_aws
from devtools.deploy.template import LIVE_ALIAS
from devtools.deploy.verify import Deployment, find_deployment, live_alias
from devtools.errors import one_line
from devtools.paths import BUILD_DIR, ROOT
from devtools.queue_spec import stage_environment

WORKTREES: Final = BUILD_DIR / "rollback"
# A command run in a directory; returns its exit status (the deploy of the earlier commit).
Runner = Callable[[Sequence[str], Path], int]


class RollbackError(SystemExit):
    """When a rollback cannot be done as asked; the message says what can."""


@dataclass(frozen=True)
class Move:
    """The alias of one function, from the version it runs to the one it will."""

    function: str
    current: str
    target: str
    described: str  # the target version's description (its commit)

    def render(self) -> str:
        return (
            f"{self.function}: alias {LIVE_ALIAS} {self.current} -> {self.target}"
            f" ({self.described})"
        )


def published_versions(lambda_client: Any, function: str) -> dict[int, str]:
    """The function's published versions (not $LATEST): number -> description."""
    found: dict[int, str] = {}
    marker: dict[str, str] = {}
    while True:
        page = lambda_client.list_versions_by_function(FunctionName=function, **marker)
        for version in page.get("Versions", []):
            if str(version.get("Version", "")).isdigit():
                found[int(version["Version"])] = str(version.get("Description", ""))
        if not page.get("NextMarker"):
            return found
        marker = {"Marker": page["NextMarker"]}


def _commit_of(description: str) -> str:
    """The commit a version's description names ("pixel-relay <stage> <commit>")."""
    return description.rsplit(" ", 1)[-1] if description else ""


def plan_moves(lambda_client: Any, functions: Sequence[str], commit: str | None) -> list[Move]:
    """Where `live` of each function goes: the version before the one it runs, or the newest
    version packaged from `commit` (a prefix of its hash is enough)."""
    moves: list[Move] = []
    for function in functions:
        current = str(
            lambda_client.get_alias(FunctionName=function, Name=LIVE_ALIAS)["FunctionVersion"]
        )
        versions = published_versions(lambda_client, function)
        if commit:
            wanted = commit.removesuffix("-dirty")
            matching = [
                number
                for number, description in versions.items()
                if (found := _commit_of(description).removesuffix("-dirty"))
                and (found.startswith(wanted) or wanted.startswith(found))
            ]
            if not matching:
                known = sorted({_commit_of(d) for d in versions.values() if d})
                raise RollbackError(
                    f"{function}: no published version was packaged from {commit}"
                    f" (versions name: {', '.join(known) or 'no commit'}). Deploy that commit's"
                    " package instead: docs/deploy.md#rolling-back"
                )
            target = max(matching)
        else:
            earlier = [number for number in versions if current.isdigit() and number < int(current)]
            if not earlier:
                raise RollbackError(
                    f"{function}: alias {LIVE_ALIAS} runs version {current} and there is no"
                    " earlier one to go back to"
                )
            target = max(earlier)
        moves.append(Move(function, current, str(target), versions[target] or "no description"))
    return moves


def move_aliases(lambda_client: Any, moves: Sequence[Move], out: Any = None) -> float:
    """Point `live` at each move's target; the seconds it took."""
    out = out or sys.stdout
    started = time.monotonic()
    for move in moves:
        if move.current == move.target:
            print(f"{move.render()}: already there", file=out)
            continue
        lambda_client.update_alias(
            FunctionName=move.function, Name=LIVE_ALIAS, FunctionVersion=move.target
        )
        print(f"{move.render()}: moved", file=out)
    return time.monotonic() - started


def stack_rollback(
    deployment: Deployment, lambda_client: Any, commit: str | None, dry_run: bool
) -> int:
    moves = plan_moves(lambda_client, [deployment.pixel, deployment.consumer], commit)
    if dry_run:
        for move in moves:
            print(f"{move.render()} (dry run: nothing moved)")
        return 0
    seconds = move_aliases(lambda_client, moves)
    print(
        f"rolled back in {seconds:.1f} s. The stack {deployment.stack_name} still records the"
        " newer versions: its next deploy moves the alias to what that deploy packages."
        f' Check it now: make ops ARGS="check --stage {deployment.stage}"'
    )
    return 0


# The chalice deploy path ----------------------------------------------------------------------


def run_in(command: Sequence[str], directory: Path) -> int:
    print("$ " + " ".join(command) + f"  (in {directory})", flush=True)
    return subprocess.run(list(command), cwd=directory, check=False).returncode


def _git(root: Path, *arguments: str) -> str:
    result = subprocess.run(
        ["git", *arguments], cwd=root, capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise RollbackError(f"git {' '.join(arguments)}: {result.stderr.strip()}")
    return result.stdout.strip()


def redeploy_commit(
    stage: str, commit: str, root: Path = ROOT, run: Runner = run_in, dry_run: bool = False
) -> int:
    """Deploy `commit` again from a worktree of this checkout, with that commit's own
    `make deploy`; the worktree is removed afterwards."""
    sha = _git(root, "rev-parse", "--verify", "--quiet", f"{commit}^{{commit}}")
    where = root / WORKTREES / sha[:12]
    command = ["make", "deploy", f"STAGE={stage}"]
    if dry_run:
        print(f"would deploy commit {sha[:12]} from a worktree at {where}: {' '.join(command)}")
        return 0
    if where.exists():  # a worktree an interrupted rollback left
        _git(root, "worktree", "remove", "--force", str(where))
        shutil.rmtree(where, ignore_errors=True)
    where.parent.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    _git(root, "worktree", "add", "--detach", str(where), sha)
    try:
        status = run(command, where)
    finally:
        _git(root, "worktree", "remove", "--force", str(where))
    minutes = (time.monotonic() - started) / 60
    outcome = "deployed" if status == 0 else f"NOT deployed (make deploy exit {status})"
    print(f"stage {stage}: commit {sha[:12]} {outcome} in {minutes:.1f} min")
    return status


# Command line -----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.deploy.rollback",
        description="Roll a stage back: on the CloudFormation path the alias live of both"
        " functions to the previous version (or --commit's), in seconds; on the chalice deploy"
        " path --commit deployed again from a git worktree (docs/deploy.md#rolling-back).",
    )
    parser.add_argument("--stage", required=True, help="stage in .chalice/config.json")
    parser.add_argument("--commit", help="go back to what this commit deployed")
    parser.add_argument("--dry-run", action="store_true", help="say what would happen")
    parser.add_argument("--stack-name", help="the stage's stack (default: pixel-relay-<stage>)")
    parser.add_argument("--profile", help="AWS profile (default: your usual credentials)")
    parser.add_argument("--project-dir", type=Path, default=ROOT, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, session: Any = None, run: Runner = run_in) -> int:
    args = parse_args(argv)
    root: Path = args.project_dir.resolve()
    stage_environment(args.stage, root)  # the stage exists
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile
    check_aws(args.profile)
    session = session or boto3.Session(profile_name=args.profile)
    lambda_client = session.client("lambda")
    try:
        deployment = find_deployment(
            args.stage,
            root,
            session.client("sqs"),
            session.client("cloudformation"),
            args.stack_name,
        )
        if deployment.stack_name is not None:
            if live_alias(lambda_client, deployment) is None:
                raise RollbackError(
                    f"stack {deployment.stack_name} runs its functions without versions"
                    " (packaged before they were added): deploy it once with make package"
                    f" STAGE={args.stage}, then rollback works from the following deploy on. To"
                    " go back now, deploy the earlier commit's package"
                    " (docs/deploy.md#rolling-back)"
                )
            return stack_rollback(deployment, lambda_client, args.commit, args.dry_run)
    except (ClientError, BotoCoreError) as error:
        print(f"rollback stopped: {one_line(error)}", file=sys.stderr)
        return 1
    if not args.commit:
        raise RollbackError(
            f"stage {args.stage} is deployed with chalice deploy, which keeps no earlier"
            " versions: name the commit to deploy again, make rollback"
            f" STAGE={args.stage} COMMIT=<commit> (git log --oneline names them)"
        )
    return redeploy_commit(args.stage, args.commit, root, run, args.dry_run)


if __name__ == "__main__":
    sys.exit(main())
