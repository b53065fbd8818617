"""Shared test set-up. Tests never reach AWS: credentials are fake and every client is
pointed at loopback; anything left unpointed hits a closed local port and fails at once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from devtools.offline import isolated_environment
from devtools.queue_spec import stage_environment

# Before anything imports app.py or builds a client: the dev stage's settings, fake
# credentials, and AWS_ENDPOINT_URL on a closed loopback port.
os.environ.update(isolated_environment(os.environ))
os.environ.update(stage_environment("dev"))
os.environ["POWERTOOLS_METRICS_NAMESPACE"] = "PixelRelay"


@pytest.fixture(scope="session")
def strict_moto() -> Iterator[Any]:
    """moto's server on loopback for the whole session, behind the proxy that refuses what
    AWS would refuse (devtools/standins/moto_proxy.py); each test makes its own resources."""
    from devtools.standins.moto_proxy import strict_moto

    with strict_moto() as proxy:
        yield proxy


@pytest.fixture(scope="session")
def moto_url(strict_moto: Any) -> str:
    """Where every test's boto3 client finds moto: the strict proxy in front of it."""
    return str(strict_moto.url)


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    """One headless Chromium for the whole run: Playwright's sync API allows one instance
    per thread, so every browser test shares this one."""
    from tests.browser import launch_chromium

    yield from launch_chromium()


@pytest.fixture(autouse=True)
def fresh_runtime() -> Iterator[None]:
    """Each test builds settings and clients from its own environment."""
    from chalicelib import runtime

    runtime.reset()
    yield
    runtime.reset()


@pytest.fixture(scope="session")
def httpserver_listen_address() -> tuple[str, int]:
    """pytest-httpserver's throwaway server on 127.0.0.1 (not `localhost`, which may be ::1)."""
    return ("127.0.0.1", 0)
