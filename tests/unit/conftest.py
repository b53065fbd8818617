"""Unit tests do no I/O: a test that needs a socket or a process belongs in tests/integration."""

from __future__ import annotations

import pytest

from tests.no_io import forbid_io


@pytest.fixture(autouse=True)
def no_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket and process call in a unit test raises, naming where the test belongs."""
    forbid_io(monkeypatch)
