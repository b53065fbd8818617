"""Fixtures for the development tooling's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import launch_chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()


# moto reset between tests, a copy of the project, one `chalice package` per session: shared
# by the deploy and ops rooms.
from tests.devtools.deploy_fixtures import moto, packaged, project, sqs  # noqa: E402, F401
