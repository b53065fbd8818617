"""A stage as `ops check` meets it, on loopback: the real pixel served as API Gateway serves
it, the stage's queues on moto, and the real consumer fed by a stand-in for Lambda's event
source mapping, which delivers whatever is queued each time the check waits (`sleep`).

The destinations are the process environment's, as the consumer reads them; the check reads
the stage from a copy of the project whose config says the same (`project_with`), so its
probes come from each plug-in's `probe` hook, as in a real run."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer

from devtools.localstack.event_source import LocalEventSourceMapping
from devtools.ops import cli as ops
from devtools.ops.check import CheckPlan
from devtools.queue_spec import QueueSpec
from tests.devtools.deploy_fixtures import serve_app_as_api_gateway

STAGE = "dev"


@dataclass
class CheckedStage:
    api_url: str
    events_url: str
    mapping: LocalEventSourceMapping
    project: Path

    def plan(self, *extra: str) -> CheckPlan:
        """The plan `ops check` makes for the project's stage, probes and all."""
        args = ops.parse_args(
            [
                "check",
                "--stage",
                STAGE,
                "--api-url",
                self.api_url,
                "--project-dir",
                str(self.project),
                *extra,
            ]
        )
        return ops.check_plan(args, ops.Ops())

    def consumer_runs(self) -> Callable[[float], object]:
        """A `sleep` during which Lambda's poller delivers what is queued."""
        return lambda _seconds: self.mapping.drain()


def project_with(project: Path, **variables: str) -> Path:
    config_file = project / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    config["stages"][STAGE]["environment_variables"].update(variables)
    config_file.write_text(json.dumps(config))
    return project


def checked_stage(
    sqs: Any,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    project: Path,
    **variables: str,
) -> Iterator[CheckedStage]:
    """The stage with `variables` (DESTINATIONS and their settings) in both the consumer's
    environment and the project's config."""
    from app import deliver
    from chalicelib import runtime

    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    runtime.reset()  # settings read before this test must not stand
    spec = QueueSpec.for_stage(STAGE)
    sqs.create_queue(QueueName=spec.dead_letter_queue)
    events_url = sqs.create_queue(QueueName=spec.events_queue)["QueueUrl"]
    mapping = LocalEventSourceMapping(sqs, events_url, handler=lambda e: deliver(e, None))
    yield CheckedStage(
        serve_app_as_api_gateway(httpserver),
        events_url,
        mapping,
        project_with(project, **variables),
    )
    httpserver.check()
