"""Shared test set-up. Tests never reach AWS: credentials are fake and every client is
pointed at loopback; anything left unpointed hits a closed local port and fails at once."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from devtools.offline import isolated_environment
from devtools.queue_spec import stage_environment

# Before anything imports app.py or builds a client: the dev stage's settings, fake
# credentials, and AWS_ENDPOINT_URL on a closed loopback port.
os.environ.update(isolated_environment(os.environ))
os.environ.update(stage_environment("dev"))
os.environ["POWERTOOLS_METRICS_NAMESPACE"] = "PixelRelay"


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Each test builds settings and clients from its own environment."""
    from chalicelib import runtime

    runtime.reset()
    yield
    runtime.reset()
