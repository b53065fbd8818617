"""No destination copies a service's error message into an outcome's reason (the two the
product names; each other destination's case is in its own tests: tests/service_messages.py).

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

from chalicelib.destinations.customer_profiles.delivery import CustomerProfilesDestination
from chalicelib.destinations.pinpoint import PinpointDestination
from chalicelib.outcomes import Outcome, Verdict
from tests.service_messages import (
    QUOTE,
    answering,
    assert_reason_without_secrets,
    refused,
    victim,
)


def customer_profiles(answer: dict[str, Any] | Exception) -> list[Outcome]:
    client = answering(answer)
    return CustomerProfilesDestination(client, "d", "T").deliver([victim()])


def pinpoint(answer: dict[str, Any] | Exception) -> list[Outcome]:
    return PinpointDestination(answering(answer), "app").deliver([victim()])


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
    assert_reason_without_secrets(outcome, reason)


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
