"""Fixtures for the development tooling's tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.browser import launch_chromium


@pytest.fixture(scope="session")
def chromium() -> Iterator[Any]:
    yield from launch_chromium()
