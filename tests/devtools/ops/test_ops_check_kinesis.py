"""`ops check` follows the test event onto a Kinesis data stream on moto: the plug-in's own
probe reads the stream from just before the hit and finds the test event's record."""

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

STREAM = "pixel-relay-check-stream"


@pytest.fixture
def stage(
    moto: str, sqs: Any, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, project: Path
) -> Iterator[CheckedStage]:
    kinesis = boto3.client("kinesis", endpoint_url=moto, region_name=REGION)
    kinesis.create_stream(StreamName=STREAM, ShardCount=2)
    yield from checked_stage(
        sqs, httpserver, monkeypatch, project, DESTINATIONS="kinesis", KINESIS_STREAM=STREAM
    )


def test_check_finds_the_test_events_record_on_the_stream(stage: CheckedStage) -> None:
    out = io.StringIO()
    assert run_check(stage.plan(), out, sleep=stage.consumer_runs()) == 0, out.getvalue()
    [line] = [x for x in out.getvalue().splitlines() if x.startswith("ok   kinesis")]
    assert line.startswith("ok   kinesis: the test event is there: record ")
    assert f"of {STREAM}" in line


def test_without_the_consumer_the_stream_never_has_it_and_the_check_fails(
    stage: CheckedStage,
) -> None:
    out = io.StringIO()
    assert run_check(stage.plan("--timeout", "0"), out, sleep=lambda _: None) == 1
    assert "FAIL kinesis: the test event did not arrive within 0 s" in out.getvalue()
