"""Every command the project prints or documents runs as written from a checkout after its
set-up: a `make` target (with ARGS where it takes any), or `.venv/bin/...`. A bare
`python -m devtools...` does not: outside `.venv` it stops at the first import
(`No module named 'aws_lambda_powertools'`), and SNS sends alarm descriptions to people who
then paste them.

Scanned: the sources (their messages, docstrings and argparse usage lines), the documents,
the Makefile, and what is generated from them at run time (each stage's merge template:
alarm descriptions and dashboard text; deploy's `next:` line; package's next steps).
"""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path

import pytest

from devtools.deploy.package import PackageResult, next_steps
from devtools.deploy.template import merge_template
from tests.docs.markdown import ROOT

# `python -m devtools...` not preceded by a path to an interpreter (.venv/bin/, $(BIN)/).
BARE = re.compile(r"(?<![\w/.$)])python3? -m devtools")
SCANNED = ("README.md", "Makefile", "app.py", "docs", "devtools", "chalicelib", "bench", "gtm")
SCANNED_SUFFIXES = frozenset({".py", ".md", ".json", ".mjs", ".js", ".tpl", ".txt", ""})
THIS_FILE = Path(__file__).resolve()


def scanned_files() -> list[Path]:
    found: list[Path] = [*ROOT.glob("requirements*.txt")]
    for name in SCANNED:
        path = ROOT / name
        if path.is_file():
            found.append(path)
            continue
        for file in path.rglob("*"):
            if file.is_file() and "__pycache__" not in file.parts:
                found += [file] if file.suffix in SCANNED_SUFFIXES else []
    found += [p for p in (ROOT / "tests").rglob("*.py") if p.resolve() != THIS_FILE]
    return found


def bare_commands(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if BARE.search(line)]


def test_no_file_prints_or_documents_a_bare_python_m_devtools() -> None:
    offenders = {
        str(path.relative_to(ROOT)): lines
        for path in scanned_files()
        if (lines := bare_commands(path.read_text(errors="replace")))
    }
    assert offenders == {}


def test_what_is_generated_for_a_stage_names_no_bare_python_m_devtools() -> None:
    """Alarm descriptions (SNS sends them), the dashboard's text, package's next steps (the
    dev stage: prod ships without its PROFILES_DOMAIN)."""
    stage = "dev"
    template = json.dumps(merge_template(stage))
    assert bare_commands(template.replace("\\n", "\n")) == []
    build = ROOT / "deploy" / "build" / stage
    steps = next_steps(stage, PackageResult(build / "merge.json", build / "sam.json", build))
    assert bare_commands(steps) == []
    assert f'make ops ARGS="check --stage {stage}' in steps
    assert f'make ops ARGS=\\"dlq --stage {stage}\\"' in template


def test_the_scan_finds_a_bare_command_where_one_is() -> None:
    """The pattern itself: what it must catch and what it must let through."""
    assert bare_commands("next: python -m devtools.ops check --stage dev")
    assert bare_commands("run `python3 -m devtools.deploy.stage teardown`")
    assert not bare_commands(".venv/bin/python -m devtools.ops check --stage dev")
    assert not bare_commands("$(BIN)/python -m devtools.ops $(ARGS)")
    assert not bare_commands('make ops ARGS="check --stage dev"')


# make targets -------------------------------------------------------------------------------

_MAKE_IN_CODE = re.compile(
    r"(?:^|`|\$ )make ([a-z][a-z-]*)((?: [A-Z_]+=(?:\"[^\"]*\"|'[^']*'|\S+))*)"
)


# The Makefile's own variables; any other NAME=value on make's command line reaches the tool as
# an environment variable (make exports command-line variables to its recipes).
MAKE_VARIABLES = frozenset({"ARGS", "STAGE", "YES", "COMMIT"})


def makefile_recipes() -> dict[str, str]:
    """Each target of the Makefile and its recipe, as `make -n` would run it."""
    recipes: dict[str, str] = {}
    target = None
    for line in (ROOT / "Makefile").read_text().splitlines():
        match = re.match(r"^([a-z][a-z-]*):", line)
        if match:
            target = match[1]
            recipes[target] = ""
        elif line.startswith("\t") and target is not None:
            recipes[target] += line + "\n"
    return recipes


def documented_make_commands() -> list[tuple[str, str, str]]:
    """(file, target, variables) of every `make ...` in a code span or block of the docs."""
    found: list[tuple[str, str, str]] = []
    for path in [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]:
        in_block = False
        for line in path.read_text().splitlines():
            if line.startswith("```"):
                in_block = not in_block
                continue
            spans = [line.strip()] if in_block else re.findall(r"`([^`]+)`", line)
            for span in spans:
                for match in _MAKE_IN_CODE.finditer(span):
                    found.append((path.name, match[1], match[2]))
    return found


def test_every_documented_make_command_names_a_target_that_takes_its_variables() -> None:
    recipes = makefile_recipes()
    commands = documented_make_commands()
    assert len(commands) > 50  # the docs are full of them: the scan works
    problems: list[str] = []
    for file, target, variables in commands:
        if target not in recipes:
            problems.append(f"{file}: make {target}: no such target")
            continue
        for variable in re.findall(r" ([A-Z_]+)=", variables):
            if variable not in MAKE_VARIABLES:
                continue  # an environment variable the tool reads (make exports it)
            if (
                f"$({variable})" not in recipes[target]
                and f"$(if $({variable})" not in (recipes[target])
            ):
                problems.append(f"{file}: make {target} {variable}=...: the target ignores it")
    assert problems == []


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        (
            ["teardown", "STAGE=dev", "YES=1", "ARGS=--force"],
            "devtools.deploy.stage teardown --stage dev --yes --force",
        ),
        (["deploy", "STAGE=dev", "ARGS=--profile x"], "deploy --stage dev --profile x"),
        (["package", "STAGE=dev", "ARGS=--merge-only"], "package --stage dev --merge-only"),
    ],
)
def test_make_passes_args_to_the_tool(target: list[str], expected: str) -> None:
    """`make teardown STAGE=dev YES=1 ARGS=--force` (before: ARGS was dropped)."""
    dry = subprocess.run(
        ["make", "-n", *target], cwd=ROOT, capture_output=True, text=True, check=True
    )
    assert any(line.endswith(expected) for line in dry.stdout.splitlines()), dry.stdout
