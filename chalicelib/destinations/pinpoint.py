"""Amazon Pinpoint `PutEvents`: as few calls as the quotas allow, every result read.

Events are grouped by endpoint into `BatchItem`s, at most 100 events and 4 MB per request.
Where a batch carries several events for one endpoint, their profile updates are merged into
one `Endpoint` (newest event wins per attribute). Two messages with the same endpoint and event
id (a client resend, an SQS redelivery) are sent once and share the result.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib import limits, telemetry
from chalicelib.destinations.base import DELIVERED, Outcome, Verdict, outcome_for_status
from chalicelib.events import Event, ProfileUpdate

if TYPE_CHECKING:
    from mypy_boto3_pinpoint import PinpointClient

# Room for the request envelope and JSON punctuation between items.
_REQUEST_BUDGET = limits.REQUEST_BYTES - 16 * 1024

EventKey = tuple[str, str]  # (endpoint id, event id)


def event_to_wire(event: Event) -> dict[str, Any]:
    """Pinpoint's `Event` shape."""
    wire: dict[str, Any] = {"EventType": event.event_type, "Timestamp": event.timestamp}
    if event.attributes:
        wire["Attributes"] = dict(event.attributes)
    if event.metrics:
        wire["Metrics"] = dict(event.metrics)
    if event.session is not None:
        wire["Session"] = {"Id": event.session.id, "StartTimestamp": event.session.start}
    return wire


def merge_profiles(events: Sequence[Event]) -> ProfileUpdate:
    """One endpoint's profile updates folded oldest to newest, so the newest value wins."""
    user_id: str | None = None
    user_attributes: dict[str, tuple[str, ...]] = {}
    endpoint_attributes: dict[str, tuple[str, ...]] = {}
    endpoint_metrics: dict[str, float] = {}
    for event in sorted(events, key=lambda e: (e.timestamp, e.received_at)):
        profile = event.profile
        user_id = profile.user_id or user_id
        user_attributes.update(profile.user_attributes)
        endpoint_attributes.update(profile.endpoint_attributes)
        endpoint_metrics.update(profile.endpoint_metrics)
    return ProfileUpdate(user_id, user_attributes, endpoint_attributes, endpoint_metrics)


def profile_to_wire(profile: ProfileUpdate) -> dict[str, Any]:
    """Pinpoint's `PublicEndpoint`, limited to custom attributes, metrics and the user."""
    wire: dict[str, Any] = {}
    if profile.endpoint_attributes:
        wire["Attributes"] = {k: list(v) for k, v in profile.endpoint_attributes.items()}
    if profile.endpoint_metrics:
        wire["Metrics"] = dict(profile.endpoint_metrics)
    user: dict[str, Any] = {}
    if profile.user_id:
        user["UserId"] = profile.user_id
    if profile.user_attributes:
        user["UserAttributes"] = {k: list(v) for k, v in profile.user_attributes.items()}
    if user:
        wire["User"] = user
    return wire


@dataclass
class PlannedRequest:
    """One PutEvents call, and which input events each of its entries stands for."""

    batch_item: dict[str, dict[str, Any]] = field(default_factory=dict)
    members: dict[EventKey, list[int]] = field(default_factory=dict)
    profile_writers: dict[str, list[int]] = field(default_factory=dict)
    size: int = 0

    @property
    def event_count(self) -> int:
        return len(self.members)


def plan_requests(events: Sequence[Event]) -> list[PlannedRequest]:
    """Group events by endpoint and pack them into as few requests as the quotas allow."""
    by_endpoint: dict[str, dict[str, list[int]]] = {}
    for index, event in enumerate(events):
        by_endpoint.setdefault(event.endpoint_id, {}).setdefault(event.event_id, []).append(index)

    requests: list[PlannedRequest] = []
    current = PlannedRequest()
    for endpoint_id, event_ids in by_endpoint.items():
        endpoint_events = [events[i] for indexes in event_ids.values() for i in indexes]
        endpoint = profile_to_wire(merge_profiles(endpoint_events))
        writers = [
            i for indexes in event_ids.values() for i in indexes if not events[i].profile.is_empty()
        ]
        endpoint_size = _json_size(endpoint) + len(endpoint_id) + 32
        for event_id, indexes in event_ids.items():
            wire = event_to_wire(events[indexes[0]])
            size = _json_size(wire) + len(event_id) + 8
            needs_endpoint = endpoint_id not in current.batch_item
            added = size + (endpoint_size if needs_endpoint else 0)
            if current.event_count >= limits.EVENTS_PER_REQUEST or (
                current.event_count and current.size + added > _REQUEST_BUDGET
            ):
                requests.append(current)
                current = PlannedRequest()
                added = size + endpoint_size
            item = current.batch_item.setdefault(endpoint_id, {"Endpoint": endpoint, "Events": {}})
            item["Events"][event_id] = wire
            current.members[(endpoint_id, event_id)] = indexes
            if writers:
                current.profile_writers[endpoint_id] = writers
            current.size += added
    if current.event_count:
        requests.append(current)
    return requests


class PinpointDestination:
    """Records events in one Pinpoint project with PutEvents."""

    name = "pinpoint"

    def __init__(self, client: PinpointClient, application_id: str) -> None:
        self._client = client
        self._application_id = application_id

    def deliver(self, events: Sequence[Event]) -> list[Outcome]:
        outcomes = [DELIVERED] * len(events)
        for request in plan_requests(events):
            for index, outcome in self._send(request).items():
                outcomes[index] = outcomes[index].worst(outcome)
        return outcomes

    def _send(self, request: PlannedRequest) -> dict[int, Outcome]:
        telemetry.count("PutEventsCalls")
        try:
            response = self._client.put_events(
                ApplicationId=self._application_id,
                EventsRequest={"BatchItem": request.batch_item},  # type: ignore[typeddict-item]
            )
        except ClientError as error:
            # Every request-level error is retried, 4xx included (a wrong application id, a
            # missing permission): after maxReceiveCount SQS moves them to the dead-letter
            # queue, where an operator finds them, instead of losing them here.
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = error.response.get("Error", {}).get("Code", "Unknown")
            return _all(request, Outcome(Verdict.RETRY, f"PutEvents failed: {status} {code}"))
        except BotoCoreError as error:
            return _all(
                request, Outcome(Verdict.RETRY, f"PutEvents failed: {type(error).__name__}")
            )
        results: dict[str, Any] = response.get("EventsResponse", {}).get("Results", {})
        return _read_results(request, results)


def _all(request: PlannedRequest, outcome: Outcome) -> dict[int, Outcome]:
    return {i: outcome for indexes in request.members.values() for i in indexes}


def _read_results(request: PlannedRequest, results: dict[str, Any]) -> dict[int, Outcome]:
    outcomes: dict[int, Outcome] = {}
    for (endpoint_id, event_id), indexes in request.members.items():
        item = results.get(endpoint_id) or {}
        event_result = (item.get("EventsItemResponse") or {}).get(event_id)
        if event_result is None:
            outcome = Outcome(Verdict.RETRY, "PutEvents returned no result for the event")
        else:
            outcome = outcome_for_status(
                int(event_result.get("StatusCode", 0)), event_result.get("Message", "")
            )
        for index in indexes:
            outcomes[index] = outcome
    for endpoint_id, writers in request.profile_writers.items():
        endpoint_result = (results.get(endpoint_id) or {}).get("EndpointItemResponse")
        if endpoint_result is None:
            continue
        status = int(endpoint_result.get("StatusCode", 0))
        endpoint_outcome = outcome_for_status(status, endpoint_result.get("Message", ""))
        if endpoint_outcome.verdict is not Verdict.DELIVERED:
            endpoint_outcome = Outcome(
                endpoint_outcome.verdict, "endpoint update: " + endpoint_outcome.reason
            )
            for index in writers:
                outcomes[index] = outcomes.get(index, DELIVERED).worst(endpoint_outcome)
    return outcomes


def _json_size(value: Any) -> int:
    return len(json.dumps(value, separators=(",", ":")))
