"""PutEvents requests: how events are packed, merged and how every result is read."""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from typing import Any

import pytest
from botocore.exceptions import ClientError, ParamValidationError, ReadTimeoutError

from chalicelib.destinations.pinpoint import PinpointDestination, plan_requests
from chalicelib.events import Event, ProfileUpdate, Session
from chalicelib.outcomes import Verdict
from tests.factories import numbered_event as make_event


class FakePinpoint:
    """Answers PutEvents like Pinpoint; `answer` may override the per-event statuses."""

    def __init__(self, answer: Callable[[str, str, dict[str, Any]], int] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer = answer or (lambda endpoint, event_id, event: 202)
        self.raise_error: Exception | None = None
        self.endpoint_status = 202

    def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        self.calls.append(EventsRequest)
        if self.raise_error is not None:
            raise self.raise_error
        results = {
            endpoint: {
                "EndpointItemResponse": {"StatusCode": self.endpoint_status, "Message": "x"},
                "EventsItemResponse": {
                    event_id: {"StatusCode": self.answer(endpoint, event_id, event), "Message": "m"}
                    for event_id, event in item["Events"].items()
                },
            }
            for endpoint, item in EventsRequest["BatchItem"].items()
        }
        return {"EventsResponse": {"Results": results}}


def deliver(events: list[Event], fake: FakePinpoint) -> list[tuple[Verdict, str]]:
    destination = PinpointDestination(fake, "app-1")  # type: ignore[arg-type]
    return [(o.verdict, o.reason) for o in destination.deliver(events)]


# Packing ------------------------------------------------------------------------------------


def test_one_thousand_events_take_ten_calls() -> None:
    events = [make_event(i, endpoint=f"ep-{i % 37}") for i in range(1000)]
    requests = plan_requests(events).requests
    assert len(requests) == 10
    assert all(r.event_count == 100 for r in requests)
    sent = {(e, i) for r in requests for (e, i) in r.members}
    assert len(sent) == 1000


def test_events_are_grouped_by_endpoint_in_one_batch_item() -> None:
    events = [make_event(1, "a"), make_event(2, "b"), make_event(3, "a")]
    [request] = plan_requests(events).requests
    assert set(request.batch_item) == {"a", "b"}
    assert set(request.batch_item["a"]["Events"]) == {"e-1", "e-3"}
    assert request.batch_item["a"]["Events"]["e-1"] == {
        "EventType": "view",
        "Timestamp": "2026-11-28T11:00:00.000Z",
        "Attributes": {"n": "1"},
    }
    assert request.batch_item["b"]["Endpoint"] == {}


def test_requests_stay_under_four_megabytes() -> None:
    big = {f"k{i}": "v" * 200 for i in range(40)}
    events = [
        Event(f"e-{i}", "view", f"ep-{i}", "2026-11-28T11:00:00.000Z", "x", attributes=big)
        for i in range(600)
    ]
    requests = plan_requests(events).requests
    # Measured as botocore writes the body: default separators, non-ASCII escaped.
    sizes = [len(json.dumps({"BatchItem": r.batch_item})) for r in requests]
    assert all(size <= 4 * 1024 * 1024 for size in sizes)
    assert all(r.event_count <= 100 for r in requests)
    assert sum(r.event_count for r in requests) == 600


def test_big_events_split_before_the_size_limit() -> None:
    # 100 events of ~100 KB each would be ~10 MB: the planner must cut by size, not count.
    value = "v" * 200
    attributes = {f"k{i:02d}": value for i in range(40)}
    session = Session("s", "2026-11-28T10:00:00.000Z")
    events = [
        Event(f"e-{i}", "view", "ep-1", "2026-11-28T11:00:00.000Z", "x", session, attributes)
        for i in range(100)
    ]
    profile = {f"a{i}": tuple(f"{j}{'x' * 98}" for j in range(50)) for i in range(20)}
    events = [
        Event(
            e.event_id,
            e.event_type,
            f"ep-{i}",
            e.timestamp,
            e.received_at,
            e.session,
            e.attributes,
            profile=ProfileUpdate(endpoint_attributes=profile),
        )
        for i, e in enumerate(events)
    ]
    requests = plan_requests(events).requests
    assert len(requests) > 1
    assert all(len(json.dumps({"BatchItem": r.batch_item})) <= 4 * 1024 * 1024 for r in requests)


def test_profile_updates_merge_and_the_newest_event_wins() -> None:
    older = make_event(
        1,
        timestamp="2026-11-28T10:00:00.000Z",
        user_attributes={"plan": ("silver",), "city": ("Oslo",)},
        endpoint_metrics={"visits": 1.0},
    )
    newer = make_event(
        2,
        timestamp="2026-11-28T11:00:00.000Z",
        user_attributes={"plan": ("gold",)},
        endpoint_attributes={"lang": ("nb",)},
        user_id="u-1",
    )
    [request] = plan_requests([newer, older]).requests
    assert request.batch_item["ep-1"]["Endpoint"] == {
        "Attributes": {"lang": ["nb"]},
        "Metrics": {"visits": 1.0},
        "User": {"UserId": "u-1", "UserAttributes": {"plan": ["gold"], "city": ["Oslo"]}},
    }


def test_repeated_event_ids_are_sent_once_and_share_the_result() -> None:
    fake = FakePinpoint()
    event = make_event(1)
    assert deliver([event, make_event(2), event], fake) == [(Verdict.DELIVERED, "")] * 3
    assert len(fake.calls[0]["BatchItem"]["ep-1"]["Events"]) == 2


# Reading results ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "verdict"),
    [
        (202, Verdict.DELIVERED),
        (400, Verdict.REJECTED),
        (403, Verdict.REJECTED),
        (429, Verdict.RETRY),
        (500, Verdict.RETRY),
        (503, Verdict.RETRY),
    ],
)
def test_per_event_status_decides_the_verdict(status: int, verdict: Verdict) -> None:
    fake = FakePinpoint(lambda endpoint, event_id, event: status if event_id == "e-2" else 202)
    outcomes = deliver([make_event(1), make_event(2), make_event(3)], fake)
    assert [o[0] for o in outcomes] == [Verdict.DELIVERED, verdict, Verdict.DELIVERED]
    if verdict is not Verdict.DELIVERED:
        assert outcomes[1][1] == f"PutEvents event failed: {status}"


def test_missing_result_is_retried() -> None:
    class Forgetful(FakePinpoint):
        def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
            return {"EventsResponse": {"Results": {}}}

    assert deliver([make_event(1)], Forgetful()) == [
        (Verdict.RETRY, "PutEvents returned no result for the event")
    ]


def client_error(status: int, code: str) -> ClientError:
    response: Any = {"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "PutEvents")


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "TooManyRequestsException"),
        (500, "InternalServerErrorException"),
        (403, "ForbiddenException"),
        (404, "NotFoundException"),
    ],
)
def test_request_level_errors_retry_every_event(status: int, code: str) -> None:
    fake = FakePinpoint()
    fake.raise_error = client_error(status, code)
    assert (
        deliver([make_event(1), make_event(2)], fake)
        == [(Verdict.RETRY, f"PutEvents failed: {status} {code}")] * 2
    )


def test_network_failure_retries_every_event() -> None:
    fake = FakePinpoint()
    fake.raise_error = ReadTimeoutError(endpoint_url="http://127.0.0.1")
    assert deliver([make_event(1)], fake) == [(Verdict.RETRY, "PutEvents failed: ReadTimeoutError")]


def test_a_failed_request_does_not_touch_events_of_other_requests() -> None:
    class FailSecond(FakePinpoint):
        def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
            if self.calls:
                self.raise_error = client_error(500, "X")
            return super().put_events(ApplicationId, EventsRequest)

    outcomes = deliver([make_event(i, endpoint=f"ep-{i}") for i in range(150)], FailSecond())
    assert [o[0] for o in outcomes].count(Verdict.DELIVERED) == 100
    assert [o[0] for o in outcomes].count(Verdict.RETRY) == 50


def test_endpoint_result_never_changes_the_events_verdict() -> None:
    fake = FakePinpoint()
    fake.endpoint_status = 400
    writer = make_event(1, endpoint_attributes={"plan": ("gold",)})
    reader = make_event(2)
    outcomes = PinpointDestination(fake, "app-1").deliver([writer, reader])  # type: ignore[arg-type]
    assert outcomes[0].verdict is Verdict.DELIVERED  # Pinpoint recorded the event
    assert (outcomes[0].profile, outcomes[0].profile_reason) == (
        Verdict.REJECTED,
        "endpoint update: PutEvents endpoint failed: 400",
    )
    assert (outcomes[1].verdict, outcomes[1].profile) == (Verdict.DELIVERED, None)


def test_profile_landed_while_the_event_must_be_retried() -> None:
    fake = FakePinpoint(lambda endpoint, event_id, event: 429)
    writer = make_event(1, user_attributes={"plan": ("gold",)})
    [outcome] = PinpointDestination(fake, "app-1").deliver([writer])  # type: ignore[arg-type]
    assert (outcome.verdict, outcome.profile) == (Verdict.RETRY, Verdict.DELIVERED)


def test_duplicate_event_ids_share_a_result_when_only_the_time_differs() -> None:
    fake = FakePinpoint()
    first = make_event(1)
    resend = make_event(1, timestamp="2026-11-28T11:00:05.000Z")
    assert deliver([first, resend], fake) == [(Verdict.DELIVERED, "")] * 2
    assert len(fake.calls[0]["BatchItem"]["ep-1"]["Events"]) == 1


def test_event_id_reused_with_other_content_rejects_the_later_copy() -> None:
    fake = FakePinpoint()
    first = make_event(1, event_type="view")
    other = make_event(1, event_type="purchase")
    assert deliver([first, other], fake) == [
        (Verdict.DELIVERED, ""),
        (Verdict.REJECTED, "event_id reused with different content in one batch"),
    ]
    assert fake.calls[0]["BatchItem"]["ep-1"]["Events"]["e-1"]["EventType"] == "view"


@pytest.mark.parametrize("status", [0, 100, 302])
def test_unknown_statuses_are_retried_not_rejected(status: int) -> None:
    fake = FakePinpoint(lambda endpoint, event_id, event: status)
    assert deliver([make_event(1)], fake)[0][0] is Verdict.RETRY


@pytest.mark.parametrize("status", [400, 413])
def test_a_request_refused_as_a_whole_is_halved_until_the_bad_event_stands_alone(
    status: int,
) -> None:
    class Picky(FakePinpoint):
        def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
            self.calls.append(EventsRequest)
            events = [e for item in EventsRequest["BatchItem"].values() for e in item["Events"]]
            if "e-13" in events:
                raise client_error(status, "BadRequestException")
            return FakePinpoint.put_events(FakePinpoint(), ApplicationId, EventsRequest)

    fake = Picky()
    outcomes = deliver([make_event(i, endpoint=f"ep-{i}") for i in range(20)], fake)
    assert outcomes[13] == (Verdict.REJECTED, f"PutEvents failed: {status} BadRequestException")
    assert [o for i, o in enumerate(outcomes) if i != 13] == [(Verdict.DELIVERED, "")] * 19
    assert len(fake.calls) <= 2 * 5 + 1  # about log2(20) halvings, each with two calls


def test_no_call_starts_without_time_to_finish() -> None:
    fake = FakePinpoint()
    destination = PinpointDestination(fake, "app-1", call_budget_ms=40_000)  # type: ignore[arg-type]
    clock = iter([50_000, 30_000])
    events = [make_event(i, endpoint=f"ep-{i}") for i in range(150)]
    outcomes = destination.deliver(events, time_left=lambda: next(clock))
    assert len(fake.calls) == 1
    assert [o.verdict for o in outcomes].count(Verdict.DELIVERED) == 100
    assert {o.reason for o in outcomes[100:]} == {"out of time"}


# One event's bad field, or one surprise, costs only that event or that request --------------


def test_an_event_botocore_refuses_is_found_by_halving_and_rejected_alone() -> None:
    class Validating(FakePinpoint):
        def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
            events = [e for item in EventsRequest["BatchItem"].values() for e in item["Events"]]
            if "e-4" in events:
                raise ParamValidationError(report="Invalid type for parameter Metrics")
            return super().put_events(ApplicationId, EventsRequest)

    fake = Validating()
    outcomes = deliver([make_event(i, endpoint=f"ep-{i}") for i in range(8)], fake)
    assert outcomes[4] == (
        Verdict.REJECTED,
        "pinpoint could not build the request: ParamValidationError",
    )
    assert [o for i, o in enumerate(outcomes) if i != 4] == [(Verdict.DELIVERED, "")] * 7
    sent = [e for call in fake.calls for item in call["BatchItem"].values() for e in item["Events"]]
    assert sorted(sent) == sorted(f"e-{i}" for i in range(8) if i != 4)  # each once


def test_an_unexpected_exception_retries_that_request_only() -> None:
    class Surprising(FakePinpoint):
        def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
            if not self.calls:
                self.calls.append(EventsRequest)
                raise AttributeError("a library surprise")
            return super().put_events(ApplicationId, EventsRequest)

    outcomes = deliver([make_event(i, endpoint=f"ep-{i}") for i in range(150)], Surprising())
    assert set(outcomes[:100]) == {(Verdict.RETRY, "pinpoint PutEvents failed: AttributeError")}
    assert set(outcomes[100:]) == {(Verdict.DELIVERED, "")}


def test_a_requeued_copy_meeting_its_original_is_the_same_event() -> None:
    fake = FakePinpoint()
    original = make_event(1, user_attributes={"plan": ("gold",)})
    copy = replace(original, destinations=("pinpoint",), profile=ProfileUpdate())
    assert deliver([original, copy], fake) == [(Verdict.DELIVERED, "")] * 2
    assert len(fake.calls) == 1
    assert list(fake.calls[0]["BatchItem"]["ep-1"]["Events"]) == ["e-1"]


def test_two_hits_differing_only_in_their_profile_update_are_two_events() -> None:
    """Only a copy the consumer made (it names its destinations) may lack the update."""
    fake = FakePinpoint()
    with_plan = make_event(1, user_attributes={"plan": ("gold",)})
    without = make_event(1)
    assert deliver([with_plan, without], fake)[1] == (
        Verdict.REJECTED,
        "event_id reused with different content in one batch",
    )
