"""Node.js for the GTM tests: the kit's Custom JavaScript variables and the tag templates run
in it. Debian's nodejs is on the machine image and CI installs it (.ci/run); without CI a
machine with no node skips these tests, with CI set it fails them."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from devtools.paths import ROOT

HARNESS = ROOT / "tests" / "gtm" / "harness.mjs"


def node() -> str:
    found = shutil.which("node") or shutil.which("nodejs")
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("node is missing: apt-get install -y nodejs")
        pytest.skip("node is missing: apt-get install -y nodejs")
    return found


def run_scenarios(template: Path) -> tuple[int, list[dict[str, Any]]]:
    """(exit status, one result per ___TESTS___ scenario) from the harness."""
    result = subprocess.run(
        [node(), str(HARNESS), str(template)],
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    if not result.stdout:
        raise AssertionError(f"the harness printed nothing: {result.stderr}")
    report: dict[str, Any] = json.loads(result.stdout)
    return result.returncode, report["results"]


def run_once(template: Path, request: dict[str, Any]) -> dict[str, Any]:
    """Runs the template's code once: {calls: {api: [args, ...]}, logs, outcome, error}."""
    result = subprocess.run(
        [node(), str(HARNESS), str(template), "--run"],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    answer: dict[str, Any] = json.loads(result.stdout)
    return answer
