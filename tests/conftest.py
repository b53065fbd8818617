"""Shared test set-up. Tests never reach AWS: credentials are fake and every client is
pointed at loopback; anything left unpointed hits a closed local port and fails at once."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def stage_environment(stage: str = "dev") -> dict[str, str]:
    """The environment Chalice gives a stage: top-level variables, then the stage's own."""
    config = json.loads((ROOT / ".chalice" / "config.json").read_text())
    environment = dict(config.get("environment_variables", {}))
    environment.update(config["stages"][stage].get("environment_variables", {}))
    return environment


os.environ.pop("AWS_PROFILE", None)
os.environ.update(
    {
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_SESSION_TOKEN": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "POWERTOOLS_METRICS_NAMESPACE": "PixelRelay",
    }
)
os.environ.update(stage_environment("dev"))


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Each test builds settings and clients from its own environment."""
    from chalicelib import runtime

    runtime.reset()
    yield
    runtime.reset()
