"""`ops url` (from --api-url, a CloudFormation stack's outputs, or what chalice deploy
recorded) and `ops check` against a pixel served like API Gateway, moto's SQS, the local
event source mapping and the Pinpoint stand-in."""

from __future__ import annotations

import io
import json
import urllib.parse
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer

from chalicelib.hits import HitPolicy, parse_hit
from devtools.localstack.event_source import LocalEventSourceMapping
from devtools.offline import REGION
from devtools.ops import cli as ops
from devtools.ops.check import CheckPlan, run_check
from devtools.ops.probes.base import TestEvent
from devtools.queue_spec import QueueSpec, stage_environment
from devtools.standins.pinpoint import PinpointStandIn
from tests.devtools.deploy_fixtures import serve_app_as_api_gateway

STAGE = "dev"
API = "https://abc123.execute-api.eu-west-1.amazonaws.com/api/"


def run_url(*args: str) -> str:
    out = io.StringIO()
    assert ops.main(["url", "--stage", STAGE, *args], out=out, err=io.StringIO()) == 0
    return out.getvalue()


def allow_profile_attributes(project: Path) -> None:
    config_file = project / ".chalice" / "config.json"
    config = json.loads(config_file.read_text())
    config["stages"]["dev"]["environment_variables"].update(
        ALLOWED_USER_ATTRIBUTES="language,favourite colour",
        ALLOWED_ENDPOINT_METRICS="visits",
    )
    config_file.write_text(json.dumps(config))


def test_url_prints_the_image_url_and_a_hit_that_passes_the_stages_rules() -> None:
    text = run_url("--api-url", API.rstrip("/"))
    assert (
        f"  {API}events?event={{{{enc event}}}}&endpoint_id={{{{enc endpointId}}}}"
        "&event_id={{Event ID}}{{pixel-relay parameters}}\n" in text
    )
    assert "none: hits record events only" in text
    example = next(line.strip() for line in text.splitlines() if line.strip().startswith(API))
    example = next(line.strip() for line in text.splitlines() if "events?event=purchase" in line)
    query = urllib.parse.urlsplit(example).query
    params = urllib.parse.parse_qs(query, keep_blank_values=True)
    assert params["evat_product"] == ["running shoes & socks"]  # encoded, so & survived
    parse_hit(params, HitPolicy.from_env(stage_environment(STAGE)), datetime.now(UTC))


def test_url_names_the_profile_attributes_the_stage_allows_and_writes_a_container(
    project: Path, tmp_path: Path
) -> None:
    allow_profile_attributes(project)
    container = tmp_path / "pixel-relay-dev.json"
    text = run_url(
        "--api-url",
        API,
        "--project-dir",
        str(project),
        "--events",
        "purchase,sign_up",
        "--container",
        str(container),
    )
    assert "Its trigger fires on these events only: purchase, sign_up." in text
    assert "usat_favourite colour" in text
    assert "from dataLayer userAttributes.language" in text
    assert "enmt_visits" in text
    example = next(line.strip() for line in text.splitlines() if "events?event=purchase" in line)
    params = urllib.parse.parse_qs(urllib.parse.urlsplit(example).query)
    assert params["usat_favourite colour"] == ["en"]

    document = json.loads(container.read_text())
    variables = {v["name"]: v for v in document["containerVersion"]["variable"]}
    assert variables["pixel-relay API URL"]["parameter"][0]["value"] == API
    code = variables["pixel-relay parameters"]["parameter"][0]["value"]
    assert '"usat_": ["favourite colour", "language"]' in code
    assert '"enmt_": ["visits"]' in code
    [trigger] = document["containerVersion"]["trigger"]
    assert trigger["customEventFilter"][0]["parameter"][1]["value"] == "^(purchase|sign_up)$"
    template_tag = next(t for t in document["containerVersion"]["tag"] if t["type"] != "img")
    [profile] = [p for p in template_tag["parameter"] if p["key"] == "profileAttributes"]
    rows = [{cell["key"]: cell["value"] for cell in row["map"]} for row in profile["list"]]
    assert {"kind": "usat_", "name": "favourite colour"}.items() <= rows[0].items()
    assert [row["kind"] + row["name"] for row in rows] == [
        "usat_favourite colour",
        "usat_language",
        "enmt_visits",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--container", "CONTAINER"], "--container needs --events"),
        (["--events", "purchase,_secret", "--container", "CONTAINER"], "'_secret'"),
    ],
)
def test_url_refuses_a_container_without_a_valid_event_allowlist(
    args: list[str], message: str, tmp_path: Path
) -> None:
    container = tmp_path / "pixel-relay-dev.json"
    args = [str(container) if arg == "CONTAINER" else arg for arg in args]
    with pytest.raises(SystemExit, match=message):
        run_url("--api-url", API, *args)
    assert not container.exists()


def test_url_reads_the_endpoint_from_a_cloudformation_stack(moto: str) -> None:
    cloudformation = boto3.client("cloudformation", endpoint_url=moto, region_name=REGION)
    cloudformation.create_stack(
        StackName="pixel-relay-dev",
        TemplateBody=json.dumps(
            {
                "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"EndpointURL": {"Value": "https://fromstack.example/api/"}},
            }
        ),
    )
    text = run_url("--stack-name", "pixel-relay-dev")
    assert "https://fromstack.example/api/events?event={{enc event}}" in text


def test_url_finds_the_stages_stack_without_being_told(moto: str) -> None:
    """A stack named pixel-relay-<stage> is the stage: no --stack-name needed."""
    cloudformation = boto3.client("cloudformation", endpoint_url=moto, region_name=REGION)
    cloudformation.create_stack(
        StackName="pixel-relay-dev",
        TemplateBody=json.dumps(
            {
                "Resources": {"Marker": {"Type": "AWS::SQS::Queue"}},
                "Outputs": {"EndpointURL": {"Value": "https://auto.example/api"}},
            }
        ),
    )
    assert "https://auto.example/api/events?event={{enc event}}" in run_url()


def test_check_takes_the_api_and_the_dead_letter_queue_from_the_stack(moto: str) -> None:
    """The stack's own resources, found by logical id, whatever they are called."""
    cloudformation = boto3.client("cloudformation", endpoint_url=moto, region_name=REGION)
    cloudformation.create_stack(
        StackName="pixel-relay-green",
        TemplateBody=json.dumps(
            {
                "Resources": {
                    "DeadLetterQueue": {
                        "Type": "AWS::SQS::Queue",
                        "Properties": {"QueueName": "green-dlq"},
                    },
                    "EventsQueue": {
                        "Type": "AWS::SQS::Queue",
                        "Properties": {"QueueName": "green-events"},
                    },
                },
                "Outputs": {"EndpointURL": {"Value": "https://green.example/api/"}},
            }
        ),
    )
    args = ops.parse_args(["check", "--stage", STAGE, "--stack-name", "pixel-relay-green"])
    plan = ops.check_plan(args, ops.Ops())
    assert (plan.api_url, plan.dead_letter_queue) == ("https://green.example/api/", "green-dlq")
    assert plan.verify_command == 'make verify STAGE=dev ARGS="--stack-name pixel-relay-green"'


def test_a_stack_name_that_does_not_exist_is_refused(moto: str) -> None:
    with pytest.raises(SystemExit, match="no CloudFormation stack nope in region"):
        ops.main(["url", "--stage", STAGE, "--stack-name", "nope"], out=io.StringIO())


def test_url_uses_what_chalice_deploy_recorded(moto: str, project: Path) -> None:
    """No stack pixel-relay-dev: the chalice deploy path's record."""
    deployed = project / ".chalice" / "deployed"
    deployed.mkdir()
    (deployed / "dev.json").write_text(
        json.dumps(
            {
                "schema_version": "2.0",
                "backend": "api",
                "resources": [
                    {
                        "name": "rest_api",
                        "resource_type": "rest_api",
                        "rest_api_id": "abc123",
                        "rest_api_url": API,
                    }
                ],
            }
        )
    )
    text = run_url("--project-dir", str(project))
    assert f"{API}events?event=" in text


def test_url_without_a_deployment_says_how_to_give_the_url(moto: str, project: Path) -> None:
    with pytest.raises(
        SystemExit,
        match=r"found no deployed API and there is no stack pixel-relay-dev.*--api-url or"
        " --stack-name",
    ):
        ops.main(["url", "--stage", STAGE, "--project-dir", str(project)], out=io.StringIO())


# check ------------------------------------------------------------------------------------


class StandInProbe:
    """What `ops check` asks Pinpoint, answered by the stand-in; the local mapping plays
    Lambda's, delivering whatever is queued each time the check looks."""

    def __init__(self, mapping: LocalEventSourceMapping, pinpoint: PinpointStandIn) -> None:
        self.mapping = mapping
        self.pinpoint = pinpoint
        self.cleaned: list[str] = []

    def delivered(self, test: TestEvent) -> str | None:
        self.mapping.drain()
        found = any(
            event.endpoint_id == test.endpoint_id for event in self.pinpoint.accepted_events
        )
        return f"endpoint {test.endpoint_id}" if found else None

    def cleanup(self, test: TestEvent) -> None:
        self.cleaned.append(test.endpoint_id)


@pytest.fixture
def deployed_stage(
    sqs: Any, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[str, StandInProbe, PinpointStandIn]]:
    from app import deliver
    from chalicelib import runtime

    spec = QueueSpec.for_stage(STAGE)
    sqs.create_queue(QueueName=spec.dead_letter_queue)
    events_url = sqs.create_queue(QueueName=spec.events_queue)["QueueUrl"]
    application = stage_environment(STAGE)["PINPOINT_APPLICATION_ID"]
    api_url = serve_app_as_api_gateway(httpserver)
    with PinpointStandIn(applications=[application]) as pinpoint:
        monkeypatch.setenv("AWS_ENDPOINT_URL_PINPOINT", pinpoint.url)
        monkeypatch.setenv("DESTINATIONS", "pinpoint")  # the check, followed through Pinpoint
        runtime.reset()  # settings read before this test must not stand
        mapping = LocalEventSourceMapping(sqs, events_url, handler=lambda e: deliver(e, None))
        yield api_url, StandInProbe(mapping, pinpoint), pinpoint
    httpserver.check()


def test_check_follows_a_test_hit_to_the_destination(
    sqs: Any, deployed_stage: tuple[str, StandInProbe, PinpointStandIn]
) -> None:
    api_url, probe, pinpoint = deployed_stage
    out = io.StringIO()
    plan = CheckPlan(
        api_url, sqs, QueueSpec.for_stage(STAGE).dead_letter_queue, {"pinpoint": probe}
    )
    assert run_check(plan, out, sleep=lambda _: None) == 0
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("ok   test hit answered 200 image/gif, a GIF")
    assert lines[1].startswith("ok   bad hit answered 400: event:")
    assert lines[2].startswith(
        "ok   pinpoint: the test event is there: endpoint pixel-relay-check-"
    )
    [event] = pinpoint.accepted_events
    assert event.event["EventType"] == "pixel_relay_check"
    assert probe.cleaned == [event.endpoint_id]


def test_check_reports_the_reason_when_the_consumer_rejects_the_test_event(
    sqs: Any, deployed_stage: tuple[str, StandInProbe, PinpointStandIn]
) -> None:
    api_url, probe, pinpoint = deployed_stage
    pinpoint.reject_events("pixel_relay_check", 400, "Event is not valid")
    out = io.StringIO()
    plan = CheckPlan(
        api_url,
        sqs,
        QueueSpec.for_stage(STAGE).dead_letter_queue,
        {"pinpoint": probe},
        stage=STAGE,
        dead_letter_every=1,
    )
    assert run_check(plan, out, sleep=lambda _: None) == 1
    last = out.getvalue().splitlines()[-1]
    assert last.startswith(
        "FAIL the consumer parked the test event on pixel-relay-dev-events-dlq:"
        " PutEvents event failed: 400."
    )
    assert 'then run make ops ARGS="check --stage dev" again' in last


def test_check_spots_a_pixel_that_does_not_answer_a_gif(sqs: Any, httpserver: HTTPServer) -> None:
    """API Gateway without binary media types returns the GIF as base64 text. The check
    asks like a browser: a bot filter would drop a tool's User-Agent."""
    body = b"R0lGODlhAQABAIAAAAAAAP///yH5BAEAAAAALAAAAAABAAEAAAIBRAA7"
    httpserver.expect_request("/api/events", method="GET").respond_with_data(
        body, content_type="image/gif"
    )
    out = io.StringIO()
    plan = CheckPlan(httpserver.url_for("/api/"), sqs, "unused", {})
    assert run_check(plan, out) == 1
    assert "binary media types" in out.getvalue()
    [(request, _)] = httpserver.log
    headers = request.headers
    assert "Chrome/" in headers["User-Agent"]
    assert headers["Accept"].startswith("image/")
    httpserver.check()


def test_check_names_the_verify_command_when_the_test_event_never_arrives(
    sqs: Any, deployed_stage: tuple[str, StandInProbe, PinpointStandIn]
) -> None:
    """No mapping running (nothing drains the queue): the check points at verify."""
    api_url, probe, _ = deployed_stage

    class Undelivered:
        def delivered(self, test: TestEvent) -> str | None:
            return None

        def cleanup(self, test: TestEvent) -> None:
            probe.cleaned.append(test.endpoint_id)

    out = io.StringIO()
    plan = CheckPlan(
        api_url,
        sqs,
        QueueSpec.for_stage(STAGE).dead_letter_queue,
        {"pinpoint": Undelivered()},
        timeout_seconds=0,
        verify_command='make verify STAGE=dev ARGS="--stack-name s"',
        consumer="pixel-relay-dev-deliver",
    )
    assert run_check(plan, out, sleep=lambda _: None) == 1
    *_, missing, after = out.getvalue().splitlines()
    assert missing == "FAIL pinpoint: the test event did not arrive within 0 s"
    assert after.startswith('FAIL next: make verify STAGE=dev ARGS="--stack-name s" (the mapping')
    assert "aws logs tail /aws/lambda/pixel-relay-dev-deliver --since 15m" in after
    assert len(probe.cleaned) == 1  # the test endpoint is removed all the same


# A destination that cannot be read back -------------------------------------------------------


def test_with_no_consumer_running_the_check_fails_instead_of_saying_ok(
    sqs: Any, deployed_stage: tuple[str, StandInProbe, PinpointStandIn]
) -> None:
    """Before: "ok no rejection of the test event within 20 s", exit 0, the event still on
    the queue. Now the event must be seen leaving the events queue."""
    api_url, _, _ = deployed_stage
    spec = QueueSpec.for_stage(STAGE)
    plan = CheckPlan(
        api_url,
        sqs,
        spec.dead_letter_queue,
        {"a-stream": None},
        events_queue=spec.events_queue,
        timeout_seconds=0,
        stage=STAGE,
    )
    out = io.StringIO()
    assert run_check(plan, out, sleep=lambda _: None) == 1
    lines = out.getvalue().splitlines()
    assert lines[-2].startswith("FAIL pixel-relay-dev-events still holds 1 message(s) after 0 s")
    assert lines[-1].startswith("FAIL next: make verify STAGE=<stage>")
    assert not any(line.startswith("ok   a-stream") for line in lines)


def test_an_event_that_left_the_queue_and_was_not_parked_passes(
    sqs: Any, deployed_stage: tuple[str, StandInProbe, PinpointStandIn]
) -> None:
    api_url, probe, _ = deployed_stage
    spec = QueueSpec.for_stage(STAGE)
    plan = CheckPlan(
        api_url, sqs, spec.dead_letter_queue, {"a-stream": None}, events_queue=spec.events_queue
    )
    out = io.StringIO()
    assert run_check(plan, out, sleep=lambda _: probe.mapping.drain()) == 0, out.getvalue()
    assert (
        out.getvalue()
        .splitlines()[-1]
        .startswith(
            "ok   a-stream: the test event left pixel-relay-dev-events and was not parked"
            " (a-stream cannot be read back: look for event id pixel-relay-check-"
        )
    )


# Errors are one line, and the help names no one destination -----------------------------------


def test_a_network_error_is_one_line(moto: str) -> None:
    """Before: a traceback (URLError) when the API cannot be reached."""
    out, err = io.StringIO(), io.StringIO()
    argv = ["check", "--stage", STAGE, "--api-url", "http://127.0.0.1:9/api/"]
    assert ops.main(argv, out=out, err=err) == 1
    [line] = out.getvalue().splitlines()[-1:]
    assert line.startswith("FAIL test hit: http://127.0.0.1:9/api/ cannot be reached:")
    assert "Traceback" not in out.getvalue() + err.getvalue()


def test_an_aws_error_in_any_ops_command_is_one_line(moto: str) -> None:
    """The stage's queues do not exist: one line naming the call, no traceback."""
    out, err = io.StringIO(), io.StringIO()
    assert ops.main(["dlq", "--stage", STAGE], out=out, err=err) == 1
    [line] = err.getvalue().splitlines()
    assert line.startswith("dlq: GetQueueUrl failed: HTTP 400")


def test_the_check_help_names_no_single_destination(capsys: pytest.CaptureFixture[str]) -> None:
    """Before: "send a test hit and follow it to Pinpoint", whatever DESTINATIONS says."""
    for argv in (["--help"], ["check", "--help"]):
        with pytest.raises(SystemExit):
            ops.parse_args(argv)
        text = capsys.readouterr().out
        assert "Pinpoint" not in text
