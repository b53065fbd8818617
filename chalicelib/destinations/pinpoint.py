"""Amazon Pinpoint `PutEvents`: as few calls as the quotas allow, every result read.

Events are grouped by endpoint into `BatchItem`s, at most 100 events and 4 MB per request.
Where a batch carries several events for one endpoint, their profile updates are merged into
one `Endpoint` (newest event wins per attribute). An event id seen twice for one endpoint
(a client resend, an SQS redelivery) is sent once and both share the result; reused with
different content, the later copy is rejected with that reason.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from chalicelib import limits, telemetry
from chalicelib.dedupe import same_occurrence
from chalicelib.destinations.base import (
    Destination,
    DestinationPlugin,
    Setting,
    Statement,
    Visitor,
    build_refusal,
    call_budget_ms,
    own_arn,
    service_client,
    unexpected_failure,
    verdict_for_status,
)
from chalicelib.env import Reader
from chalicelib.events import Event, ProfileUpdate
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mypy_boto3_pinpoint import PinpointClient

# Room for the request envelope; sizes are measured as botocore writes JSON (", " and ": "
# separators, non-ASCII escaped), so the estimate is never below the real body.
_REQUEST_BUDGET = limits.REQUEST_BYTES - 16 * 1024
_ENTRY_OVERHEAD = 8

EventKey = tuple[str, str]  # (endpoint id, event id)
NAME = "pinpoint"
APPLICATION: Final = Setting(
    "PINPOINT_APPLICATION_ID", "the Pinpoint project (application) id events are recorded in"
)


@dataclass(frozen=True)
class Settings:
    application_id: str
    timeout_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        reader = Reader(environ)
        return cls(
            application_id=reader.name(APPLICATION.variable),
            timeout_seconds=reader.delivery_timeout(),
        )


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
    if all(event.profile.is_empty() for event in events):
        return ProfileUpdate()  # most hits write no profile: nothing to order or merge
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

    endpoints: dict[str, dict[str, Any]] = field(default_factory=dict)
    events: dict[EventKey, dict[str, Any]] = field(default_factory=dict)
    members: dict[EventKey, list[int]] = field(default_factory=dict)
    size: int = 0

    @property
    def event_count(self) -> int:
        return len(self.members)

    @property
    def batch_item(self) -> dict[str, dict[str, Any]]:
        item: dict[str, dict[str, Any]] = {}
        for (endpoint_id, event_id), wire in self.events.items():
            entry = item.setdefault(
                endpoint_id, {"Endpoint": self.endpoints[endpoint_id], "Events": {}}
            )
            entry["Events"][event_id] = wire
        return item

    def add(self, key: EventKey, wire: dict[str, Any], endpoint: dict[str, Any]) -> None:
        self.endpoints[key[0]] = endpoint
        self.events[key] = wire

    def halves(self) -> tuple[PlannedRequest, PlannedRequest]:
        """Split in two, to find which events a request-level 400 or 413 is about."""
        keys = list(self.members)
        middle = len(keys) // 2
        return self._subset(keys[:middle]), self._subset(keys[middle:])

    def _subset(self, keys: Sequence[EventKey]) -> PlannedRequest:
        part = PlannedRequest()
        for key in keys:
            part.add(key, self.events[key], self.endpoints[key[0]])
            part.members[key] = self.members[key]
        return part


@dataclass
class Plan:
    """Requests to send, and the events settled without a call (conflicting duplicates)."""

    requests: list[PlannedRequest]
    settled: dict[int, Outcome]


def plan_requests(events: Sequence[Event]) -> Plan:
    """Group events by endpoint and pack them into as few requests as the quotas allow.

    An event whose entry cannot be built is rejected alone; an endpoint whose merged profile
    update cannot be built rejects the events of that endpoint (they share the update)."""
    by_endpoint: dict[str, dict[str, list[int]]] = {}
    settled: dict[int, Outcome] = {}
    wires: dict[int, dict[str, Any]] = {}
    for index, event in enumerate(events):
        ids = by_endpoint.setdefault(event.endpoint_id, {})
        earlier = ids.get(event.event_id)
        if earlier is None:
            try:
                wires[index] = event_to_wire(event)
            except Exception as error:  # this event's alone
                settled[index] = Outcome(Verdict.REJECTED, build_refusal(NAME, "event", error))
                continue
            ids[event.event_id] = [index]
        elif same_occurrence(events[earlier[0]], event):
            earlier.append(index)
        else:
            settled[index] = Outcome(
                Verdict.REJECTED, "event_id reused with different content in one batch"
            )

    entries: list[tuple[str, str, dict[str, Any], list[int]]] = []
    endpoints: dict[str, dict[str, Any]] = {}
    for endpoint_id, event_ids in by_endpoint.items():
        sent = [i for indexes in event_ids.values() for i in indexes]
        try:
            endpoints[endpoint_id] = profile_to_wire(merge_profiles([events[i] for i in sent]))
        except Exception as error:  # this endpoint's events alone
            refusal = Outcome(Verdict.REJECTED, build_refusal(NAME, "endpoint update", error))
            settled.update(dict.fromkeys(sent, refusal))
            continue
        for event_id, indexes in event_ids.items():
            entries.append((endpoint_id, event_id, wires[indexes[0]], indexes))

    requests: list[PlannedRequest] = []
    for start in range(0, len(entries), limits.EVENTS_PER_REQUEST):
        chunk = entries[start : start + limits.EVENTS_PER_REQUEST]
        # One json.dumps for the whole chunk: nearly every batch is far below 4 MB, and
        # only a chunk near the limit needs sizing event by event.
        chunk_endpoints = {entry[0]: endpoints[entry[0]] for entry in chunk}
        size = (
            _json_size([[e[0], e[1], e[2]] for e in chunk] + list(chunk_endpoints.values()))
            + len(chunk) * _ENTRY_OVERHEAD
            + len(chunk_endpoints) * 32
        )
        if size <= _REQUEST_BUDGET:
            request = PlannedRequest(size=size)
            for endpoint_id, event_id, wire, indexes in chunk:
                request.add((endpoint_id, event_id), wire, endpoints[endpoint_id])
                request.members[(endpoint_id, event_id)] = indexes
            requests.append(request)
        else:
            requests.extend(_pack_by_size(chunk, endpoints))
    return Plan(requests, settled)


def _pack_by_size(
    entries: Sequence[tuple[str, str, dict[str, Any], list[int]]],
    endpoints: dict[str, dict[str, Any]],
) -> list[PlannedRequest]:
    requests: list[PlannedRequest] = []
    current = PlannedRequest()
    endpoint_sizes: dict[str, int] = {}
    for endpoint_id, event_id, wire, indexes in entries:
        if endpoint_id not in endpoint_sizes:
            endpoint_sizes[endpoint_id] = _json_size(endpoints[endpoint_id]) + len(endpoint_id) + 32
        endpoint_size = endpoint_sizes[endpoint_id]
        size = _json_size(wire) + len(event_id) + _ENTRY_OVERHEAD
        added = size + (0 if endpoint_id in current.endpoints else endpoint_size)
        if current.event_count >= limits.EVENTS_PER_REQUEST or (
            current.event_count and current.size + added > _REQUEST_BUDGET
        ):
            requests.append(current)
            current = PlannedRequest()
            added = size + endpoint_size
        current.add((endpoint_id, event_id), wire, endpoints[endpoint_id])
        current.members[(endpoint_id, event_id)] = indexes
        current.size += added
    if current.event_count:
        requests.append(current)
    return requests


class PinpointDestination(Destination):
    """Records events in one Pinpoint project with PutEvents."""

    name = NAME

    def __init__(
        self, client: PinpointClient, application_id: str, call_budget_ms: int = 0
    ) -> None:
        """`call_budget_ms`: the longest one call can take, retries included; no call is
        started with less Lambda time left than that."""
        self._client = client
        self._application_id = application_id
        self._call_budget_ms = call_budget_ms

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        plan = plan_requests(events)
        event_outcomes: dict[int, Outcome] = dict(plan.settled)
        endpoint_outcomes: dict[str, Outcome] = {}
        pending = list(plan.requests)
        while pending:
            request = pending.pop(0)
            if time_left is not None and time_left() < self._call_budget_ms:
                answer = _everything(request, Outcome(Verdict.RETRY, "out of time"))
            else:
                answer = self._send(request, pending)
            for index, outcome in answer.events.items():
                event_outcomes[index] = outcome
            for endpoint_id, outcome in answer.endpoints.items():
                best = endpoint_outcomes.get(endpoint_id)
                # The endpoint goes with every request that carries its events: the
                # profile landed if any of those updates was accepted.
                if best is None or outcome.verdict < best.verdict:
                    endpoint_outcomes[endpoint_id] = outcome
        return [
            event_outcomes[index]
            if index in plan.settled
            else _with_profile(event_outcomes[index], events[index], endpoint_outcomes)
            for index in range(len(events))
        ]

    def forget(self, visitor: Visitor, time_left: TimeLeft = None) -> Outcome:
        """DeleteEndpoint for an endpoint id, DeleteUserEndpoints for a user id: AWS's way
        to delete an endpoint's data ("Deleting data from Amazon Pinpoint"). Events already
        recorded stay in the project's analytics; only deleting the project removes them.
        After Pinpoint's end of support (2026-10-30) AWS says its endpoints can no longer
        be accessed: the call's failure is then the answer (docs/erasure.md)."""
        done: list[str] = []
        try:
            if visitor.endpoint_id:
                try:
                    self._client.delete_endpoint(
                        ApplicationId=self._application_id, EndpointId=visitor.endpoint_id
                    )
                    done.append("endpoint deleted")
                except ClientError as error:
                    if _status(error) != 404:
                        raise
                    done.append("nothing left: no such endpoint")
            if visitor.user_id:
                try:
                    answer = self._client.delete_user_endpoints(
                        ApplicationId=self._application_id, UserId=visitor.user_id
                    )
                    count = len(answer.get("EndpointsResponse", {}).get("Item", []))
                    done.append(
                        f"{count} endpoint(s) of the user deleted"
                        if count
                        else "nothing left: no endpoint of the user"
                    )
                except ClientError as error:
                    if _status(error) != 404:
                        raise
                    done.append("nothing left: no endpoint of the user")
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            reason = f"{error.operation_name} failed: {_status(error)} {code}".strip()
            return Outcome(verdict_for_status(_status(error)), reason)
        except (BotoCoreError, ParamValidationError) as error:
            return Outcome(Verdict.RETRY, f"Pinpoint failed: {type(error).__name__}")
        return Outcome(Verdict.DELIVERED, "; ".join(done) or "nothing to erase")

    def _send(self, request: PlannedRequest, pending: list[PlannedRequest]) -> _Answer:
        telemetry.count("PutEventsCalls")
        try:
            response = self._client.put_events(
                ApplicationId=self._application_id,
                EventsRequest={"BatchItem": request.batch_item},  # type: ignore[typeddict-item]
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            code = error.response.get("Error", {}).get("Code", "Unknown")
            reason = f"PutEvents failed: {status} {code}"
            if status in (400, 413):
                # The request is refused as a whole because of what some event carries:
                # halve it until the events at fault stand alone, and reject only those.
                if request.event_count > 1:
                    pending[:0] = request.halves()
                    return _Answer({}, {})
                return _everything(request, Outcome(Verdict.REJECTED, reason))
            # Everything else is retried, other 4xx included (a wrong project id, a missing
            # permission): after maxReceiveCount SQS moves the messages to the dead-letter
            # queue, where an operator finds them, instead of losing them here.
            return _everything(request, Outcome(Verdict.RETRY, reason))
        except ParamValidationError as error:
            # botocore refused the request before sending: halve it like a 400 until the
            # event at fault stands alone, and reject only that one.
            if request.event_count > 1:
                pending[:0] = request.halves()
                return _Answer({}, {})
            refusal = build_refusal(NAME, "request", error)
            return _everything(request, Outcome(Verdict.REJECTED, refusal))
        except BotoCoreError as error:
            reason = f"PutEvents failed: {type(error).__name__}"
            return _everything(request, Outcome(Verdict.RETRY, reason))
        except Exception as error:  # this request's failure, not the batch's
            return _everything(request, unexpected_failure(NAME, "PutEvents", error))
        results: dict[str, Any] = response.get("EventsResponse", {}).get("Results", {})
        return _read_results(request, results)


@dataclass(frozen=True)
class _Answer:
    events: dict[int, Outcome]
    endpoints: dict[str, Outcome]


def _everything(request: PlannedRequest, outcome: Outcome) -> _Answer:
    return _Answer(
        {i: outcome for indexes in request.members.values() for i in indexes},
        {endpoint_id: outcome for endpoint_id in request.endpoints},
    )


def _item_outcome(result: dict[str, Any] | None, what: str) -> Outcome:
    if result is None:
        return Outcome(Verdict.RETRY, f"PutEvents returned no result for the {what}")
    status = int(result.get("StatusCode") or 0)
    verdict = verdict_for_status(status)
    if verdict is Verdict.DELIVERED:
        return DELIVERED  # one shared (frozen) outcome for the common case
    # The status, never Pinpoint's message: it may quote an id (docs/operations.md#logs).
    return Outcome(verdict, f"PutEvents {what} failed: {status}")


def _read_results(request: PlannedRequest, results: dict[str, Any]) -> _Answer:
    events: dict[int, Outcome] = {}
    answers: dict[str, dict[str, Any]] = {}  # endpoint id -> its EventsItemResponse
    for (endpoint_id, event_id), indexes in request.members.items():
        endpoint_answers = answers.get(endpoint_id)
        if endpoint_answers is None:
            item = results.get(endpoint_id) or {}
            endpoint_answers = answers[endpoint_id] = item.get("EventsItemResponse") or {}
        outcome = _item_outcome(endpoint_answers.get(event_id), "event")
        for index in indexes:
            events[index] = outcome
    endpoints = {
        endpoint_id: _item_outcome(
            (results.get(endpoint_id) or {}).get("EndpointItemResponse"), "endpoint"
        )
        for endpoint_id in request.endpoints
    }
    return _Answer(events, endpoints)


def _with_profile(outcome: Outcome, event: Event, endpoints: dict[str, Outcome]) -> Outcome:
    if event.profile.is_empty():
        return outcome
    endpoint = endpoints.get(event.endpoint_id, Outcome(Verdict.RETRY, "not sent"))
    reason = "" if endpoint.verdict is Verdict.DELIVERED else "endpoint update: " + endpoint.reason
    return replace(outcome, profile=endpoint.verdict, profile_reason=reason)


def _json_size(value: Any) -> int:
    return len(json.dumps(value))


def _status(error: ClientError) -> int:
    return int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


class Pinpoint(DestinationPlugin[Settings]):
    name = NAME
    service = "pinpoint"
    variables = (APPLICATION,)
    double = "devtools.localstack.doubles.pinpoint"
    probe = "devtools.ops.probes.pinpoint:probe"
    # PutEvents takes 100 events a call.
    calls_per_1000_events = 10
    call_metric = "PutEventsCalls"

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        return Settings.from_env(environ)

    def create(self, pool: Executor | None = None) -> PinpointDestination:
        settings = self.settings
        client: PinpointClient = service_client(self.service, settings.timeout_seconds)
        return PinpointDestination(
            client, settings.application_id, call_budget_ms(settings.timeout_seconds)
        )

    def iam_statements(self) -> list[Statement]:
        """PutEvents in the one project (its ARN, and what is under it)."""
        application = self.settings.application_id
        return [
            {
                "Sid": "RecordEvents",
                "Effect": "Allow",
                "Action": ["mobiletargeting:PutEvents"],
                "Resource": [
                    own_arn("mobiletargeting", f"apps/{application}"),
                    own_arn("mobiletargeting", f"apps/{application}/*"),
                ],
            }
        ]

    def erasure_statements(self) -> list[Statement]:
        """`forget`'s deletes, in the one project."""
        application = self.settings.application_id
        return [
            {
                "Sid": "ForgetPinpointEndpoints",
                "Effect": "Allow",
                "Action": ["mobiletargeting:DeleteEndpoint", "mobiletargeting:DeleteUserEndpoints"],
                "Resource": [
                    own_arn("mobiletargeting", f"apps/{application}"),
                    own_arn("mobiletargeting", f"apps/{application}/*"),
                ],
            }
        ]


PLUGIN: Final = Pinpoint
