"""The Pinpoint stand-in, driven by a real boto3 client over loopback HTTP.

These pin down that what the app's tests see from the stand-in is what boto3 would make
of the real service's answers: results, per-event failures and request-level errors.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError, ReadTimeoutError

from devtools.paths import ROOT as REPO
from devtools.standins.pinpoint import (
    MAX_REQUEST_BYTES,
    AcceptedEvent,
    PinpointStandIn,
)

if TYPE_CHECKING:
    from mypy_boto3_pinpoint import PinpointClient
    from mypy_boto3_pinpoint.type_defs import PutEventsResponseTypeDef

APP = "app-1"
TIMESTAMP = "2024-05-01T12:00:00.000Z"


@pytest.fixture(autouse=True)
def _no_real_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    """Dummy credentials, so nothing can reach a real account by accident."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)


@pytest.fixture
def standin() -> Iterator[PinpointStandIn]:
    with PinpointStandIn(applications=(APP, "app-2")) as server:
        yield server


def make_client(url: str, **config: Any) -> PinpointClient:
    # total_max_attempts=1: no retries, so each call is exactly one request.
    # (retries={"max_attempts": 1} would still allow one retry.)
    settings: dict[str, Any] = {"retries": {"total_max_attempts": 1}, **config}
    return boto3.client(
        "pinpoint",
        endpoint_url=url,
        region_name="us-east-1",
        config=Config(**settings),
    )


@pytest.fixture
def client(standin: PinpointStandIn) -> PinpointClient:
    return make_client(standin.url)


def event(event_type: str = "page_view", **extra: Any) -> dict[str, Any]:
    return {"EventType": event_type, "Timestamp": TIMESTAMP, **extra}


def put(client: PinpointClient, batch: dict[str, Any], app: str = APP) -> PutEventsResponseTypeDef:
    return client.put_events(ApplicationId=app, EventsRequest={"BatchItem": batch})


def error_of(excinfo: pytest.ExceptionInfo[ClientError]) -> tuple[str, int]:
    response = excinfo.value.response
    return response["Error"]["Code"], response["ResponseMetadata"]["HTTPStatusCode"]


def test_accepted_batch_round_trips(standin: PinpointStandIn, client: PinpointClient) -> None:
    endpoint = {"ChannelType": "CUSTOM", "Address": "anon-1", "User": {"UserId": "u1"}}
    view = event(
        Attributes={"page": "/home"},
        Metrics={"value": 1.5},
        Session={"Id": "s1", "StartTimestamp": TIMESTAMP},
    )
    response = put(
        client,
        {
            "ep-1": {"Endpoint": endpoint, "Events": {"ev-1": view, "ev-2": event()}},
            "ep-2": {"Endpoint": {}, "Events": {"ev-3": event("purchase")}},
        },
    )

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    accepted = {"StatusCode": 202, "Message": "Accepted"}
    assert response["EventsResponse"]["Results"] == {
        "ep-1": {
            "EndpointItemResponse": accepted,
            "EventsItemResponse": {"ev-1": accepted, "ev-2": accepted},
        },
        "ep-2": {
            "EndpointItemResponse": accepted,
            "EventsItemResponse": {"ev-3": accepted},
        },
    }
    assert standin.accepted_events == [
        AcceptedEvent("ep-1", "ev-1", view, endpoint, APP),
        AcceptedEvent("ep-1", "ev-2", event(), endpoint, APP),
        AcceptedEvent("ep-2", "ev-3", event("purchase"), {}, APP),
    ]


def test_requests_are_recorded_with_body_and_status(
    standin: PinpointStandIn, client: PinpointClient
) -> None:
    put(client, {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event()}}}, app="app-2")
    with pytest.raises(ClientError):
        put(client, {}, app="nope")

    first, second = standin.requests
    assert first.application_id == "app-2"
    assert first.status == 202
    assert first.body == {"BatchItem": {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event()}}}}
    assert (second.application_id, second.status) == ("nope", 404)
    assert standin.accepted_events[0].application_id == "app-2"


def test_rejected_event_type_gets_per_event_status(
    standin: PinpointStandIn, client: PinpointClient
) -> None:
    standin.reject_events("purchase", status=400, message="bad purchase")
    standin.reject_events("throttled", status=429, message="slow down")

    response = put(
        client,
        {
            "ep-1": {
                "Endpoint": {},
                "Events": {
                    "ok": event(),
                    "bad": event("purchase"),
                    "slow": event("throttled"),
                },
            }
        },
    )

    assert response["ResponseMetadata"]["HTTPStatusCode"] == 202
    answers = response["EventsResponse"]["Results"]["ep-1"]["EventsItemResponse"]
    assert answers == {
        "ok": {"StatusCode": 202, "Message": "Accepted"},
        "bad": {"StatusCode": 400, "Message": "bad purchase"},
        "slow": {"StatusCode": 429, "Message": "slow down"},
    }
    assert [e.event_id for e in standin.accepted_events] == ["ok"]

    standin.clear_rules()
    put(client, {"ep-1": {"Endpoint": {}, "Events": {"again": event("purchase")}}})
    assert [e.event_id for e in standin.accepted_events] == ["ok", "again"]


def test_event_missing_required_fields_is_rejected_alone(
    standin: PinpointStandIn,
) -> None:
    # botocore refuses to send such an event, so switch its validation off.
    client = make_client(standin.url, parameter_validation=False)
    response = put(
        client,
        {
            "ep-1": {
                "Endpoint": {},
                "Events": {
                    "ok": event(),
                    "no-type": {"Timestamp": TIMESTAMP},
                    "neither": {"Attributes": {"a": "b"}},
                },
            }
        },
    )

    answers = response["EventsResponse"]["Results"]["ep-1"]["EventsItemResponse"]
    assert answers["ok"]["StatusCode"] == 202
    assert answers["no-type"]["StatusCode"] == 400
    assert "EventType" in answers["no-type"]["Message"]
    assert "Timestamp" not in answers["no-type"]["Message"]
    assert answers["neither"]["StatusCode"] == 400
    assert "EventType" in answers["neither"]["Message"]
    assert "Timestamp" in answers["neither"]["Message"]
    assert [e.event_id for e in standin.accepted_events] == ["ok"]


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "TooManyRequestsException"),
        (500, "InternalServerErrorException"),
        (403, "ForbiddenException"),
    ],
)
def test_programmed_request_failure_surfaces_as_client_error(
    standin: PinpointStandIn, client: PinpointClient, status: int, code: str
) -> None:
    standin.fail_next_requests(status)
    batch = {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event()}}}

    with pytest.raises(ClientError) as excinfo:
        put(client, batch)

    assert error_of(excinfo) == (code, status)
    assert isinstance(excinfo.value, getattr(client.exceptions, code))
    assert excinfo.value.response["RequestID"]
    assert standin.accepted_events == []
    # Only the next request fails.
    assert put(client, batch)["ResponseMetadata"]["HTTPStatusCode"] == 202
    assert [r.status for r in standin.requests] == [status, 202]


def test_failures_are_consumed_by_botocore_retries(standin: PinpointStandIn) -> None:
    client = make_client(standin.url, retries={"total_max_attempts": 3})
    standin.fail_next_requests(429)
    standin.fail_next_requests(500)

    response = put(client, {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event()}}})

    assert response["ResponseMetadata"]["RetryAttempts"] == 2
    assert [r.status for r in standin.requests] == [429, 500, 202]
    assert len(standin.accepted_events) == 1


def test_unknown_application_is_not_found(standin: PinpointStandIn, client: PinpointClient) -> None:
    with pytest.raises(ClientError) as excinfo:
        put(client, {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event()}}}, "nope")

    assert error_of(excinfo) == ("NotFoundException", 404)
    assert standin.accepted_events == []


def test_more_than_100_events_is_a_bad_request(
    standin: PinpointStandIn, client: PinpointClient
) -> None:
    def batch(first: int, second: int) -> dict[str, Any]:
        return {
            "ep-1": {
                "Endpoint": {},
                "Events": {f"a{i}": event() for i in range(first)},
            },
            "ep-2": {
                "Endpoint": {},
                "Events": {f"b{i}": event() for i in range(second)},
            },
        }

    with pytest.raises(ClientError) as excinfo:
        put(client, batch(60, 41))
    assert error_of(excinfo) == ("BadRequestException", 400)
    assert standin.accepted_events == []

    put(client, batch(60, 40))
    assert len(standin.accepted_events) == 100


def test_oversized_body_is_payload_too_large(
    standin: PinpointStandIn, client: PinpointClient
) -> None:
    big = event(Attributes={"blob": "x" * MAX_REQUEST_BYTES})

    with pytest.raises(ClientError) as excinfo:
        put(client, {"ep-1": {"Endpoint": {}, "Events": {"ev-1": big}}})

    assert error_of(excinfo) == ("PayloadTooLargeException", 413)
    assert standin.accepted_events == []
    assert standin.requests[0].body is None


def _post_raw(standin: PinpointStandIn, body: bytes) -> int:
    request = urllib.request.Request(
        f"{standin.url}/v1/apps/{APP}/events", data=body, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            status: int = response.status
    except urllib.error.HTTPError as error:
        status = error.code
        error.close()
    return status


def test_size_limit_is_exactly_4_mib(standin: PinpointStandIn) -> None:
    doc = json.dumps({"BatchItem": {"ep-1": {"Endpoint": {}, "Events": {}}}})
    at_limit = doc.encode().ljust(MAX_REQUEST_BYTES)  # JSON allows trailing spaces

    assert _post_raw(standin, at_limit) == 202
    assert _post_raw(standin, at_limit + b" ") == 413


def test_delay_provokes_client_read_timeout(standin: PinpointStandIn) -> None:
    client = make_client(standin.url, read_timeout=0.3, connect_timeout=1)
    batch = {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event()}}}
    standin.delay_next_requests(2.0)

    with pytest.raises(ReadTimeoutError):
        put(client, batch)

    # Like a slow real service, the stand-in still processed the request.
    assert [e.event_id for e in standin.accepted_events] == ["ev-1"]
    # Only the next request was delayed.
    assert put(client, batch)["ResponseMetadata"]["HTTPStatusCode"] == 202


def test_reset_clears_records_and_rules(standin: PinpointStandIn, client: PinpointClient) -> None:
    batch = {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event("purchase")}}}
    put(client, batch)
    standin.reject_events("purchase")
    standin.fail_next_requests(500)

    standin.reset()

    assert standin.requests == []
    assert standin.accepted_events == []
    put(client, batch)
    assert len(standin.accepted_events) == 1


def test_unsupported_failure_status_is_refused(standin: PinpointStandIn) -> None:
    with pytest.raises(ValueError, match="418"):
        standin.fail_next_requests(418)
    with pytest.raises(ValueError, match="202"):
        standin.reject_events("purchase", status=202)


def test_cli_prints_accepted_events_as_json_lines() -> None:
    command = [sys.executable, "-m", "devtools.standins.pinpoint"]
    with subprocess.Popen(
        [*command, "--port", "0", "--application", APP],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as process:
        try:
            assert process.stderr is not None
            assert process.stdout is not None
            banner = process.stderr.readline()  # written once it is serving
            url = re.search(r"http://[\d.]+:\d+", banner)
            assert url is not None, banner
            put(
                make_client(url.group()),
                {"ep-1": {"Endpoint": {}, "Events": {"ev-1": event()}}},
            )

            line = json.loads(process.stdout.readline())
            assert line == {
                "application_id": APP,
                "endpoint_id": "ep-1",
                "event_id": "ev-1",
                "event": event(),
                "endpoint": {},
            }
        finally:
            process.terminate()
            assert process.wait(timeout=10) == 0


def test_model_validation_refuses_what_botocore_refuses() -> None:
    with PinpointStandIn(applications=["app-1"], validate_model=True) as standin:
        client = boto3.client(
            "pinpoint",
            endpoint_url=standin.url,
            region_name="us-east-1",
            config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
        )
        bad: Any = {
            "ep": {"Endpoint": {}, "Events": {"e": {"EventType": "x", "Attributes": {"a": 1}}}}
        }
        with pytest.raises(ClientError) as caught:
            client.put_events(ApplicationId="app-1", EventsRequest={"BatchItem": bad})
        assert caught.value.response["Error"]["Code"] == "BadRequestException"
        message = caught.value.response["Error"]["Message"]
        assert "Timestamp" in message
        assert "Attributes.a" in message
        assert standin.accepted_events == []
