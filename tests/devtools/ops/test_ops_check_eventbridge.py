"""`ops check` on a stage whose destination cannot be read back (an EventBridge bus on
moto): the test event must leave the events queue and not be parked; still queued is a
failure naming what to run next."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from devtools.offline import REGION
from devtools.ops.check import run_check
from tests.devtools.ops.checked_stage import CheckedStage, checked_stage

BUS = "pixel-relay-check-bus"


@pytest.fixture
def stage(
    moto: str, sqs: Any, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, project: Path
) -> Iterator[CheckedStage]:
    boto3.client("events", endpoint_url=moto, region_name=REGION).create_event_bus(Name=BUS)
    yield from checked_stage(
        sqs, httpserver, monkeypatch, project, DESTINATIONS="eventbridge", EVENTBRIDGE_BUS=BUS
    )


def test_the_event_left_the_queue_and_was_not_parked(stage: CheckedStage) -> None:
    out = io.StringIO()
    assert run_check(stage.plan(), out, sleep=stage.consumer_runs()) == 0, out.getvalue()
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith(
            "ok   eventbridge: the test event left pixel-relay-dev-events and was not parked"
        )
    )


def test_with_no_consumer_the_check_fails_and_names_what_to_run(stage: CheckedStage) -> None:
    """The issue's case: before, "ok no rejection of the test event within 20 s" and exit
    0, with the event still on the queue."""
    out = io.StringIO()
    assert run_check(stage.plan("--timeout", "0"), out, sleep=lambda _: None) == 1
    *_, queued, after = out.getvalue().splitlines()
    assert queued.startswith("FAIL pixel-relay-dev-events still holds 1 message(s) after 0 s")
    assert after.startswith("FAIL next: make verify STAGE=dev (the mapping, the queues")
    assert "ok   eventbridge" not in out.getvalue()
