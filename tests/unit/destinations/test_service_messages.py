"""No destination copies a service's error message into an outcome's reason.

Reasons go to the consumer's log lines and to the dead letter's `rejection_reason`, where
docs/operations.md promises no endpoint id, user id or attribute value. A service's message
may quote one ("Profile with key ep-... not found"), so every destination keeps the service's
error code (or an item's HTTP status) and drops its message. Each fake below answers a
per-item failure, or refuses the request, with a message quoting the event's identifiers.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from botocore.exceptions import ClientError

from chalicelib.destinations.customer_profiles.delivery import CustomerProfilesDestination
from chalicelib.destinations.eventbridge import EventBridgeDestination
from chalicelib.destinations.firehose import FirehoseDestination
from chalicelib.destinations.kinesis import KinesisDestination
from chalicelib.destinations.kinesis import Settings as KinesisSettings
from chalicelib.destinations.pinpoint import PinpointDestination
from chalicelib.events import Event, ProfileUpdate
from chalicelib.outcomes import Outcome, Verdict
from tests.factories import make_event

SECRETS = ("ep-victim", "u-victim", "alice@example.com")
QUOTE = "Profile ep-victim of user u-victim (alice@example.com) is not valid"


def victim() -> Event:
    return make_event(
        1,
        endpoint_id="ep-victim",
        attributes={"email": "alice@example.com"},
        profile=ProfileUpdate(user_id="u-victim", user_attributes={"plan": ("gold",)}),
    )


def refused(status: int, code: str, operation: str) -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": QUOTE},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


class Answering:
    """A client whose every method answers `answer` (or raises it)."""

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        def call(**_: Any) -> dict[str, Any]:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

        return call


def customer_profiles(answer: dict[str, Any] | Exception) -> list[Outcome]:
    client = Answering(answer)
    return CustomerProfilesDestination(client, "d", "T").deliver([victim()])


def pinpoint(answer: dict[str, Any] | Exception) -> list[Outcome]:
    return PinpointDestination(Answering(answer), "app").deliver([victim()])  # type: ignore[arg-type]


def eventbridge(answer: dict[str, Any] | Exception) -> list[Outcome]:
    return EventBridgeDestination(Answering(answer), "bus", "pixel-relay").deliver([victim()])  # type: ignore[arg-type]


def firehose(answer: dict[str, Any] | Exception) -> list[Outcome]:
    return FirehoseDestination(Answering(answer), "s").deliver([victim()])  # type: ignore[arg-type]


def kinesis(answer: dict[str, Any] | Exception) -> list[Outcome]:
    settings = KinesisSettings(stream="s", timeout_seconds=1)
    return KinesisDestination(Answering(answer), settings).deliver([victim()])  # type: ignore[arg-type]


CASES: list[tuple[str, Callable[[Any], list[Outcome]], dict[str, Any] | Exception, str]] = [
    (
        "customer-profiles item",
        customer_profiles,
        {"Failed": [{"Id": "0", "Code": 400, "Message": QUOTE}]},
        "BatchPutProfileObject item failed: 400",
    ),
    (
        "customer-profiles request",
        customer_profiles,
        refused(400, "BadRequestException", "BatchPutProfileObject"),
        "BatchPutProfileObject refused: 400 BadRequestException",
    ),
    (
        "pinpoint item",
        pinpoint,
        {
            "EventsResponse": {
                "Results": {
                    "ep-victim": {
                        "EndpointItemResponse": {"StatusCode": 400, "Message": QUOTE},
                        "EventsItemResponse": {"e-1": {"StatusCode": 400, "Message": QUOTE}},
                    }
                }
            }
        },
        "PutEvents event failed: 400",
    ),
    (
        "pinpoint request",
        pinpoint,
        refused(403, "ForbiddenException", "PutEvents"),
        "PutEvents failed: 403 ForbiddenException",
    ),
    (
        "eventbridge entry",
        eventbridge,
        {
            "FailedEntryCount": 1,
            "Entries": [{"ErrorCode": "InvalidArgument", "ErrorMessage": QUOTE}],
        },
        "PutEvents entry failed: InvalidArgument",
    ),
    (
        "firehose record",
        firehose,
        {
            "FailedPutCount": 1,
            "RequestResponses": [
                {"ErrorCode": "ServiceUnavailableException", "ErrorMessage": QUOTE}
            ],
        },
        "PutRecordBatch record failed: ServiceUnavailableException",
    ),
    (
        "kinesis record",
        kinesis,
        {
            "FailedRecordCount": 1,
            "Records": [{"ErrorCode": "InternalFailure", "ErrorMessage": QUOTE}],
        },
        "PutRecords InternalFailure",
    ),
    (
        "request-level failure",
        firehose,
        refused(404, "ResourceNotFoundException", "PutRecordBatch"),
        "PutRecordBatch failed: 404 ResourceNotFoundException",
    ),
]


@pytest.mark.parametrize(
    ("deliver", "answer", "reason"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_a_reason_keeps_the_services_code_and_drops_its_message(
    deliver: Callable[[Any], list[Outcome]], answer: dict[str, Any] | Exception, reason: str
) -> None:
    [outcome] = deliver(answer)
    assert outcome.verdict is not Verdict.DELIVERED
    assert outcome.reason == reason
    for text in (outcome.reason, outcome.profile_reason):
        for secret in SECRETS:
            assert secret not in text


def test_pinpoints_endpoint_failure_is_named_without_its_message() -> None:
    answer = {
        "EventsResponse": {
            "Results": {
                "ep-victim": {
                    "EndpointItemResponse": {"StatusCode": 400, "Message": QUOTE},
                    "EventsItemResponse": {"e-1": {"StatusCode": 202, "Message": "Accepted"}},
                }
            }
        }
    }
    [outcome] = pinpoint(answer)
    assert outcome.verdict is Verdict.DELIVERED
    assert outcome.profile is Verdict.REJECTED
    assert outcome.profile_reason == "endpoint update: PutEvents endpoint failed: 400"
