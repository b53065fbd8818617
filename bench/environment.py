"""The process set-up every measurement shares: offline AWS settings, quiet stdout, the machine.

The environment is the test suite's: the dev stage's variables, fake credentials and every
AWS endpoint on a closed loopback port, so nothing measured here can reach an account.
"""

from __future__ import annotations

import contextlib
import os
import platform
import sys
from collections.abc import Iterator, Mapping
from importlib import metadata
from pathlib import Path
from typing import Any, Final

from devtools.offline import isolated_environment
from devtools.paths import ROOT
from devtools.queue_spec import stage_environment

STAGE: Final = "dev"
PACKAGES: Final = ("chalice", "boto3", "botocore", "aws-lambda-powertools", "moto")
# What Lambda sets in every function's environment (the runtime, not the stage config):
# code may rightly behave differently inside Lambda, so the app is measured as it runs there.
LAMBDA_VARIABLES: Final = {
    "AWS_LAMBDA_FUNCTION_NAME": "pixel-relay-dev",
    "AWS_EXECUTION_ENV": "AWS_Lambda_python3.11",
}


def offline_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` plus the stage's variables, fake credentials and closed AWS endpoints."""
    environment = isolated_environment(base)
    environment.update(stage_environment(STAGE, ROOT))
    environment.update(LAMBDA_VARIABLES)
    # Clients the measurement points somewhere else get these per run, never inherited.
    for name in ("AWS_ENDPOINT_URL_SQS", "AWS_ENDPOINT_URL_PINPOINT"):
        environment.pop(name, None)
    return environment


def prepare_process() -> None:
    """Make this process offline and able to import app.py (before anything imports it)."""
    wanted = offline_environment(dict(os.environ))
    for name in [name for name in os.environ if name not in wanted]:
        del os.environ[name]
    os.environ.update(wanted)
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))


@contextlib.contextmanager
def environment_patch(values: Mapping[str, str]) -> Iterator[None]:
    """Set variables for the duration of a block, then put the old ones back."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


@contextlib.contextmanager
def quiet_stdout() -> Iterator[None]:
    """Send file descriptor 1 to /dev/null for a block.

    The app writes a metrics line (Embedded Metric Format) per hit and a log line per batch,
    as it does in Lambda; the writes stay in the measurement, the lines stay off the table.
    Powertools' logger holds its own reference to sys.stdout, so only a descriptor-level
    redirect silences everything.
    """
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine() -> dict[str, Any]:
    """What the numbers were measured on, for the table's caption and the JSON."""
    versions: dict[str, str] = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    return {
        "nproc": os.cpu_count() or 0,
        "usable_cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 0,
        "cpu_model": cpu_model(),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages": versions,
    }
