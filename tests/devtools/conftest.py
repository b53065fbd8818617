"""Fixtures for the development tooling's tests."""

from __future__ import annotations

# moto reset between tests, a copy of the project, one `chalice package` per session: shared
# by the deploy and ops rooms.
from tests.devtools.deploy_fixtures import moto, packaged, project, sqs  # noqa: F401
