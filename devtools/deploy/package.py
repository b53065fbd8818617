"""The CloudFormation deploy path: one template with everything, checked with cfn-lint.

    .venv/bin/python -m devtools.deploy.package --stage prod

writes `deploy/build/<stage>/merge.json` (generated from the stage's settings, see
`devtools.deploy.template`), runs `chalice package --merge-template` into
`deploy/build/<stage>/package/` (sam.json and deployment.zip), adds compiled bytecode to the
zip (`devtools.deploy.bytecode`: Lambda then compiles nothing at a cold start) and lints the
result. Deploying
it is then two AWS CLI commands, printed at the end (docs/deploy.md). `deploy/build/` is not
committed: it is rebuilt from checked-in sources every time.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from devtools.deploy.bytecode import compile_zip
from devtools.deploy.preflight import PreflightError, check_region, check_stage
from devtools.deploy.template import merge_template, point_api_at_alias
from devtools.locks import chalice_environment
from devtools.paths import BUILD_DIR, ROOT
from devtools.process import aws_region, run, tool

BUILD: Final = BUILD_DIR


@dataclass(frozen=True)
class PackageResult:
    merge_template: Path
    template: Path
    package_dir: Path


def write_merge_template(stage: str, out_dir: Path, root: Path = ROOT) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "merge.json"
    path.write_text(json.dumps(merge_template(stage, root), indent=2) + "\n")
    return path


def package(stage: str, out_dir: Path, root: Path = ROOT) -> PackageResult:
    """`chalice package` with the merge template; raise SystemExit if Chalice fails."""
    check_stage(stage, root)
    merge = write_merge_template(stage, out_dir, root)
    package_dir = out_dir / "package"
    status = run(
        [
            tool("chalice"),
            "--project-dir",
            str(root),
            "package",
            "--stage",
            stage,
            "--merge-template",
            str(merge),
            str(package_dir),
        ],
        cwd=root,
        env=chalice_environment(root),
    )
    if status != 0:
        raise SystemExit(f"chalice package failed (exit {status})")
    template = package_dir / "sam.json"
    template.write_text(
        json.dumps(point_api_at_alias(json.loads(template.read_text())), indent=2) + "\n"
    )
    compiled = compile_zip(package_dir / "deployment.zip")
    print(f"deployment.zip: bytecode for {compiled} modules")
    return PackageResult(merge, package_dir / "sam.json", package_dir)


def lint(template: Path, cwd: Path = ROOT) -> int:
    """cfn-lint's exit status: 0 clean; errors and warnings are printed."""
    return run([tool("cfn-lint"), "--", str(template)], cwd=cwd)


def next_steps(stage: str, result: PackageResult) -> str:
    packaged = result.package_dir.parent / "packaged.yaml"
    return "\n".join(
        [
            "",
            f"Packaged stage {stage}: {result.template}",
            "Deploy it (an S3 bucket of yours holds the code; CAPABILITY_IAM for the roles):",
            f"  aws cloudformation package --template-file {result.template} \\",
            f"      --s3-bucket <your-bucket> --output-template-file {packaged}",
            f"  aws cloudformation deploy --template-file {packaged} \\",
            f"      --stack-name pixel-relay-{stage} --capabilities CAPABILITY_IAM \\",
            "      --parameter-overrides EnableWaf=false AlarmTopicArn= PixelReservedConcurrency=0",
            f'Then: make ops ARGS="check --stage {stage} --stack-name pixel-relay-{stage}"',
        ]
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.deploy.package",
        description="Build the stage's CloudFormation template (chalice package"
        " --merge-template) and check it with cfn-lint.",
    )
    parser.add_argument("--stage", required=True, help="stage in .chalice/config.json")
    parser.add_argument("--out", type=Path, help="output directory (default deploy/build/<stage>)")
    parser.add_argument(
        "--merge-only",
        action="store_true",
        help="only write the merge template; no chalice package, no lint",
    )
    args = parser.parse_args(argv)
    # chalice package reads AWS_DEFAULT_REGION only; AWS_REGION works too. The region decides
    # which resource types exist (cfn-lint checks it), so a stage whose destinations are not
    # offered there is refused before anything is built.
    region = aws_region()
    if not region:
        raise PreflightError(
            "no AWS region: set AWS_REGION (or AWS_DEFAULT_REGION), or region in your profile"
        )
    check_region(args.stage, region)
    out_dir: Path = args.out or ROOT / BUILD / args.stage
    if args.merge_only:
        print(write_merge_template(args.stage, out_dir))
        return 0
    result = package(args.stage, out_dir)
    status = lint(result.template)
    if status != 0:
        print(f"cfn-lint found problems in {result.template} (exit {status})", file=sys.stderr)
        return 1
    print(next_steps(args.stage, result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
