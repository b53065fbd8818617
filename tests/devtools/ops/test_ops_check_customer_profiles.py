"""`ops check` follows the test event into Customer Profiles (the default destination): the
plug-in's own probe, made by the check from its `probe` hook, finds the test profile's
object on the stand-in, and deletes the test profile afterwards."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from chalicelib.destinations.customer_profiles.settings import Settings
from devtools.deploy.profiles_setup import ensure_object_type
from devtools.ops.check import run_check
from devtools.queue_spec import stage_environment
from devtools.standins.customer_profiles import ProfilesStandIn
from tests.devtools.ops.checked_stage import STAGE, CheckedStage, checked_stage

DOMAIN = stage_environment(STAGE)["PROFILES_DOMAIN"]


@pytest.fixture
def profiles(monkeypatch: pytest.MonkeyPatch) -> Iterator[ProfilesStandIn]:
    with ProfilesStandIn(domains=[DOMAIN]) as standin:
        monkeypatch.setenv("AWS_ENDPOINT_URL_CUSTOMER_PROFILES", standin.url)
        client = boto3.client("customer-profiles", endpoint_url=standin.url)
        ensure_object_type(client, Settings.from_env(stage_environment(STAGE)))
        yield standin


@pytest.fixture
def stage(
    sqs: Any,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    project: Path,
    profiles: ProfilesStandIn,
) -> Iterator[CheckedStage]:
    yield from checked_stage(
        sqs, httpserver, monkeypatch, project, DESTINATIONS="customer-profiles"
    )


def test_check_finds_the_test_profiles_object_and_removes_the_profile(
    stage: CheckedStage, profiles: ProfilesStandIn
) -> None:
    """Before, a Customer Profiles stage got "no rejection within 180 s" at best: nothing
    was read back."""
    out = io.StringIO()
    assert run_check(stage.plan(), out, sleep=stage.consumer_runs()) == 0, out.getvalue()
    [line] = [x for x in out.getvalue().splitlines() if "customer-profiles" in x]
    assert line.startswith("ok   customer-profiles: the test event is there: object ")
    assert f"in domain {DOMAIN}" in line
    [accepted] = profiles.accepted_objects
    assert accepted.object["event_type"] == "pixel_relay_check"
    # Cleaned up: the test profile and its object are gone.
    endpoint = accepted.object["endpoint_id"]
    assert profiles.profile(DOMAIN, "pixelRelayEndpointId", endpoint) is None
    assert profiles.stored_objects(DOMAIN, "PixelRelayEvent") == []
    operations = [r.operation for r in profiles.requests]
    assert {"SearchProfiles", "ListProfileObjects", "DeleteProfile"} <= set(operations)


def test_a_test_event_the_service_keeps_refusing_is_still_queued_and_named(
    stage: CheckedStage, profiles: ProfilesStandIn
) -> None:
    """Throttled every time: the consumer retries, the event never arrives, the check says
    what to run next instead of ok."""
    profiles.fail_next_requests(429, count=1000)
    out = io.StringIO()
    plan = stage.plan("--timeout", "0")
    assert run_check(plan, out, sleep=stage.consumer_runs()) == 1
    lines = out.getvalue().splitlines()
    assert "FAIL customer-profiles: the test event did not arrive within 0 s" in lines
    assert lines[-1].startswith("FAIL next: make verify STAGE=dev")
