"""Amazon Connect Customer Profiles: each event recorded as one profile object.

Events go in `BatchPutProfileObject` calls of up to 10 objects, in an object type that
`devtools.deploy.profiles_setup` defines from `object_type_definition`. That object type ties
the object to the profile of its endpoint id (and, for a hit with a trusted user id, to the
profile of that user id too, so one person's devices meet in one profile), copies the allowed
user attributes onto that profile and names the event's time as the object's source
timestamp, so an older event never overwrites a newer value. One accepted object records
the event and its profile update together. A unique key derived from (endpoint id, event
id) makes a resend overwrite its first copy instead of adding a second one.

A batch's calls are written by a small pool of threads: the objects of one profile stay in
one worker, oldest first, and independent profiles go concurrently, so a batch of 100 at
300 ms a call takes about a second, not thirty. docs/destinations/customer-profiles.md has
the keys, the fields, the object and the rates.
"""

from __future__ import annotations

import json
import math
import re
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from chalicelib import limits, telemetry
from chalicelib.destinations.base import (
    DestinationSpec,
    Statement,
    build_refusal,
    call_budget_ms,
    client_error_outcome,
    own_arn,
    service_client,
    unexpected_failure,
    verdict_for_status,
)
from chalicelib.env import ConfigError, Reader
from chalicelib.events import Event
from chalicelib.outcomes import Outcome, TimeLeft, Verdict
from chalicelib.service_models import model_rule

NAME: Final = "customer-profiles"
ACTION: Final = "BatchPutProfileObject"

# From botocore's model (customer-profiles 2020-08-15): the `Object` (stringifiedJson), the
# profile `Attributes` values (string1To255) and the items of one BatchPutProfileObject.
MAX_OBJECT_CHARS: Final = 256_000
MAX_PROFILE_ATTRIBUTE_CHARS: Final = 255
MAX_ITEMS_PER_CALL: Final = 10

# The pool that writes one batch's calls (PROFILES_WRITE_THREADS): botocore keeps 10
# connections per client, so more threads would only wait for a connection.
DEFAULT_WRITE_THREADS: Final = 4
MAX_WRITE_THREADS: Final = 10

# An allowed user attribute becomes the JSON accessor `_source.profile_attributes.<name>`
# and the target `_profile.Attributes.<name>`: a "." would read as nesting, and nothing
# documents other punctuation in accessors, so only these names are mapped.
_MAPPABLE_ATTRIBUTE: Final = re.compile(r"[A-Za-z0-9_]+")
VALUE_SEPARATOR: Final = ", "
# An event trigger is named TRIGGER_PREFIX + the event type; its name is 1-64 of
# [a-zA-Z0-9_-] (botocore's model), and an event type is at most 50 characters.
TRIGGER_PREFIX: Final = "pixel-relay-"
MAX_TRIGGER_EVENT_CHARS: Final = limits.EVENT_TYPE_LENGTH
_TRIGGER_EVENT: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TRIGGER_EVENT_CHARS}}}")

# Profile attributes pixel-relay writes itself; an allowed user attribute may not take them.
ENDPOINT_ID_ATTRIBUTE: Final = "pixel_relay_endpoint_id"
USER_ID_ATTRIBUTE: Final = "pixel_relay_user_id"
# The object type's keys: the endpoint id finds (or creates) the profile; a trusted user id,
# when the hit has one, is a second PROFILE key, so every device of one user meets in the
# profile that user id names. An anonymous hit has no user id, so it can join nothing.
PROFILE_KEY: Final = "pixelRelayEndpointId"
USER_PROFILE_KEY: Final = "pixelRelayUserId"
UNIQUE_KEY: Final = "pixelRelayObjectId"
# The field the object type names as the object's source timestamp, and its format (Java's
# DateTimeFormatter pattern for Event.timestamp, "2026-11-30T10:00:00.000Z"): the service
# keeps a profile value from a newer object when an older one arrives after it.
SOURCE_TIMESTAMP_FIELD: Final = "sourceLastUpdatedTimestamp"
SOURCE_TIMESTAMP_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSX"

# Fixed forever: object ids are uuid5(namespace, "<endpoint id> <event id>"), and a new
# namespace would give every resent event a second object.
OBJECT_ID_NAMESPACE: Final = uuid.UUID("6f1c2a52-3f0e-4d55-9a41-8d7c1e0b5a90")

# Request-level failures that every further call in the batch would meet too (a missing
# domain or object type, a missing permission, throttling): the rest is not sent.
_BATCH_WIDE_STATUSES: Final = frozenset({403, 404, 429})
# A request refused for what it carries: split until the object at fault stands alone.
_REFUSED_STATUSES: Final = frozenset({400, 413})


@dataclass(frozen=True)
class Settings:
    domain: str
    object_type: str
    timeout_seconds: int
    # Mapped onto the profile by the object type (ALLOWED_USER_ATTRIBUTES, as the pixel).
    user_attributes: frozenset[str]
    # PROFILES_TRIGGER_EVENTS: one event trigger per event type (`make profiles-setup` and
    # the CloudFormation path create them; the consumer only writes objects).
    trigger_events: tuple[str, ...] = ()
    # Calls of one batch in flight at once (PROFILES_WRITE_THREADS).
    write_threads: int = DEFAULT_WRITE_THREADS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        reader = Reader(environ)
        return cls(
            domain=reader.modelled(
                "PROFILES_DOMAIN",
                model_rule("customer-profiles", ACTION, "DomainName"),
            ),
            object_type=_object_type(reader),
            timeout_seconds=reader.delivery_timeout(),
            user_attributes=mappable_attributes(reader.attribute_names("ALLOWED_USER_ATTRIBUTES")),
            trigger_events=trigger_events(reader.names("PROFILES_TRIGGER_EVENTS")),
            write_threads=reader.integer(
                "PROFILES_WRITE_THREADS",
                default=DEFAULT_WRITE_THREADS,
                low=1,
                high=MAX_WRITE_THREADS,
            ),
        )


def _object_type(reader: Reader) -> str:
    name = reader.modelled(
        "PROFILES_OBJECT_TYPE",
        model_rule("customer-profiles", ACTION, "ObjectTypeName"),
        default="PixelRelayEvent",
    )
    if name.startswith("_"):
        raise ConfigError("PROFILES_OBJECT_TYPE", "may not start with _ (AWS's standard types)")
    return name


def trigger_events(names: Iterable[str]) -> tuple[str, ...]:
    """PROFILES_TRIGGER_EVENTS, sorted: each an event type the pixel accepts, and usable in
    the trigger's name (`pixel-relay-<event>`: letters, digits, _ and - only)."""
    for name in sorted(names):
        if name.startswith("_"):
            refused = f"{name!r}: the pixel refuses event types starting with _"
            raise ConfigError("PROFILES_TRIGGER_EVENTS", refused)
        if not _TRIGGER_EVENT.fullmatch(name):
            raise ConfigError(
                "PROFILES_TRIGGER_EVENTS",
                f"{name!r}: an event trigger is named after its event type, so only letters,"
                f" digits, _ and - are allowed, at most {MAX_TRIGGER_EVENT_CHARS} characters",
            )
    return tuple(sorted(names))


def mappable_attributes(names: Iterable[str]) -> frozenset[str]:
    """The allowed user attribute names, refused here (at start) if the object type could
    not map one: an event would then carry an attribute that never reaches the profile."""
    allowed = frozenset(names)
    for name in sorted(allowed):
        if not _MAPPABLE_ATTRIBUTE.fullmatch(name):
            raise ConfigError(
                "ALLOWED_USER_ATTRIBUTES",
                f"{name!r}: customer-profiles maps names of letters, digits and _ only",
            )
        if name in (ENDPOINT_ID_ATTRIBUTE, USER_ID_ATTRIBUTE):
            raise ConfigError(
                "ALLOWED_USER_ATTRIBUTES", f"{name!r} is the profile attribute pixel-relay sets"
            )
    return allowed


class ProfilesClient(Protocol):
    """The part of boto3's "customer-profiles" client the destination uses."""

    def batch_put_profile_object(
        self,
        *,
        DomainName: str,  # noqa: N803 (boto3's parameter names)
        ObjectTypeName: str,  # noqa: N803
        Items: list[dict[str, str]],  # noqa: N803
    ) -> Mapping[str, Any]: ...


def _client(settings: Settings) -> ProfilesClient:
    client: ProfilesClient = service_client("customer-profiles", settings.timeout_seconds)
    return client


def _destination(client: ProfilesClient, settings: Settings) -> CustomerProfilesDestination:
    return CustomerProfilesDestination(
        client,
        settings.domain,
        settings.object_type,
        call_budget_ms(settings.timeout_seconds),
        settings.write_threads,
    )


def create(settings: Settings) -> CustomerProfilesDestination:
    return _destination(_client(settings), settings)


def iam_statements(settings: Settings) -> list[Statement]:
    """Object writes in the one domain, for the one object type. BatchPutProfileObject is
    authorized by profile:PutProfileObject (IAM and cfn-lint know no BatchPutProfileObject)."""
    return [
        {
            "Sid": "PutProfileObjects",
            "Effect": "Allow",
            "Action": ["profile:PutProfileObject"],
            # IAM lists both the domain and the object type as this action's resources.
            "Resource": [
                own_arn("profile", f"domains/{settings.domain}"),
                own_arn(
                    "profile", f"domains/{settings.domain}/object-types/{settings.object_type}"
                ),
            ],
        }
    ]


# The object ------------------------------------------------------------------------------


def object_id(event: Event) -> str:
    """The object's unique key: event ids are unique per endpoint only (a client may send
    its own), and ids have no spaces, so "<endpoint> <event>" is unambiguous."""
    return str(uuid.uuid5(OBJECT_ID_NAMESPACE, f"{event.endpoint_id} {event.event_id}"))


def profile_value(values: Sequence[str]) -> str | None:
    """A multi-valued user attribute as one profile attribute (a string of at most 255):
    the values joined with ", ", as many whole values as fit. The object keeps the list."""
    present = [value for value in values if value]
    kept: list[str] = []
    for value in present:
        if len(VALUE_SEPARATOR.join([*kept, value])) > MAX_PROFILE_ATTRIBUTE_CHARS:
            break
        kept.append(value)
    if present and not kept:
        return present[0][:MAX_PROFILE_ATTRIBUTE_CHARS]
    return VALUE_SEPARATOR.join(kept) or None


def profile_object(event: Event) -> dict[str, Any]:
    """The stored object: Event.to_record() without its nulls, plus the unique `object_id`
    and `profile_attributes` (each user attribute as the one string the profile holds)."""
    record = {name: value for name, value in event.to_record().items() if value is not None}
    record["object_id"] = object_id(event)
    attributes = {
        name: profile_value(values) for name, values in event.profile.user_attributes.items()
    }
    record["profile_attributes"] = {k: v for k, v in attributes.items() if v is not None}
    return record


def object_type_definition(settings: Settings) -> dict[str, Any]:
    """The PutProfileObjectType request for the destination's object type.

    The event's time is the source timestamp (`SOURCE_TIMESTAMP_FIELD`, in
    `SourceLastUpdatedTimestampFormat`): the service then keeps a profile attribute from the
    newest event, whatever order the objects arrive in. Fields without a Target are there
    for keys, calculated attributes and segments; ContentType and AllowProfileCreation are
    explicit so that a definition read back with GetProfileObjectType compares equal to
    this one.
    """
    fields: dict[str, dict[str, str]] = {
        "object_id": _field("object_id"),
        "event_id": _field("event_id"),
        "event_type": _field("event_type"),
        "timestamp": _field("timestamp"),
        "endpoint_id": _field("endpoint_id", ENDPOINT_ID_ATTRIBUTE),
        "user_id": _field("user_id", USER_ID_ATTRIBUTE),
        SOURCE_TIMESTAMP_FIELD: _field("timestamp"),
    }
    for name in sorted(settings.user_attributes):
        fields[f"user.{name}"] = _field(f"profile_attributes.{name}", name)
    return {
        "DomainName": settings.domain,
        "ObjectTypeName": settings.object_type,
        "Description": (
            "pixel-relay: one object per GTM pixel event, on the profile of its endpoint id "
            "(and of its user id, when the hit has a trusted one); allowed user attributes are "
            "copied onto the profile, the newest event's value kept."
        ),
        "AllowProfileCreation": True,
        "SourceLastUpdatedTimestampFormat": SOURCE_TIMESTAMP_FORMAT,
        "Fields": fields,
        "Keys": {
            PROFILE_KEY: [{"StandardIdentifiers": ["PROFILE"], "FieldNames": ["endpoint_id"]}],
            USER_PROFILE_KEY: [{"StandardIdentifiers": ["PROFILE"], "FieldNames": ["user_id"]}],
            UNIQUE_KEY: [{"StandardIdentifiers": ["UNIQUE"], "FieldNames": ["object_id"]}],
        },
    }


def _field(source: str, attribute: str | None = None) -> dict[str, str]:
    definition = {"Source": f"_source.{source}", "ContentType": "STRING"}
    if attribute is not None:
        definition["Target"] = f"_profile.Attributes.{attribute}"
    return definition


# The destination -------------------------------------------------------------------------


@dataclass
class _Item:
    """One event's object, ready to send."""

    index: int  # in the batch
    event: Event
    body: str


def profile_groups(events: Sequence[Event]) -> list[list[int]]:
    """Indexes of the events that may write one profile, oldest first in each group: the
    same endpoint id, or the same user id (a second PROFILE key), joined transitively."""
    parent = list(range(len(events)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for index, event in enumerate(events):
        keys = [("endpoint", event.endpoint_id)]
        if event.profile.user_id:
            keys.append(("user", event.profile.user_id))
        for key in keys:
            if key in first:
                parent[root(index)] = root(first[key])
            else:
                first[key] = index
    groups: dict[int, list[int]] = {}
    for index in range(len(events)):
        groups.setdefault(root(index), []).append(index)
    # ISO 8601 UTC with milliseconds sorts as text; equal times keep the batch's order.
    return [sorted(members, key=lambda i: (events[i].timestamp, i)) for members in groups.values()]


def plan_calls(items: Sequence[_Item]) -> list[list[list[_Item]]]:
    """The calls for `items`, as lanes: each lane's calls go one after the other, lanes go
    concurrently. As few calls as the item limit allows (ceil(n / 10)); a profile's objects
    share one call when they fit (best fit, largest profiles first), and when a profile
    needs more than one call, those calls are in one lane and its objects go oldest first
    across them."""
    if not items:
        return []
    groups = [[items[i] for i in group] for group in profile_groups([i.event for i in items])]
    free = [MAX_ITEMS_PER_CALL] * math.ceil(len(items) / MAX_ITEMS_PER_CALL)
    placed: list[tuple[list[_Item], list[tuple[int, int]]]] = []  # group, [(call, count)]
    for group in sorted(groups, key=lambda g: (-len(g), g[0].index)):
        fitting = [c for c in range(len(free)) if free[c] >= len(group)]
        parts: list[tuple[int, int]] = []
        if fitting:
            best = min(fitting, key=lambda c: (free[c], c))
            parts.append((best, len(group)))
            free[best] -= len(group)
        else:
            left = len(group)
            while left:
                roomiest = max(range(len(free)), key=lambda c: (free[c], -c))
                taken = min(left, free[roomiest])
                parts.append((roomiest, taken))
                free[roomiest] -= taken
                left -= taken
        placed.append((group, sorted(parts)))
    # Lanes: calls that share a profile. In a lane, calls go in index order, and a profile's
    # objects are dealt to its calls in that order, oldest first.
    lane_of = list(range(len(free)))

    def lane(call: int) -> int:
        while lane_of[call] != call:
            call = lane_of[call]
        return call

    calls: list[list[_Item]] = [[] for _ in free]
    for group, parts in placed:
        position = 0
        for call, taken in parts:
            calls[call].extend(group[position : position + taken])
            position += taken
            lane_of[lane(call)] = lane(parts[0][0])
    lanes: dict[int, list[list[_Item]]] = {}
    for index, call_items in enumerate(calls):
        if call_items:
            lanes.setdefault(lane(index), []).append(call_items)
    return list(lanes.values())


@dataclass
class _Stop:
    """Shared by a batch's workers: set by a failure every further call would meet."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcome: Outcome | None = None

    def get(self) -> Outcome | None:
        with self.lock:
            return self.outcome

    def set(self, reason: str) -> None:
        with self.lock:
            if self.outcome is None:
                self.outcome = Outcome(Verdict.RETRY, f"not sent after {reason}")


class CustomerProfilesDestination:
    """Records events in one Customer Profiles domain, up to 10 objects a call."""

    name = NAME

    def __init__(
        self,
        client: ProfilesClient,
        domain: str,
        object_type: str,
        call_budget_ms: int = 0,
        write_threads: int = DEFAULT_WRITE_THREADS,
    ) -> None:
        """`call_budget_ms`: the longest one call can take, retries included; no call is
        started with less Lambda time left than that. `write_threads`: calls in flight."""
        self._client = client
        self._domain = domain
        self._object_type = object_type
        self._call_budget_ms = call_budget_ms
        self._write_threads = max(1, write_threads)

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        outcomes: list[Outcome] = [Outcome(Verdict.RETRY, "not sent")] * len(events)
        items: list[_Item] = []
        for index, event in enumerate(events):
            built = _build(event)
            if isinstance(built, Outcome):
                outcomes[index] = built
            else:
                items.append(_Item(index, event, built))
        lanes = plan_calls(items)
        stop = _Stop()
        calls = 0
        results: list[tuple[list[tuple[_Item, Outcome]], int]]
        if len(lanes) <= 1 or self._write_threads == 1:
            results = [self._run_lane(lane, time_left, stop) for lane in lanes]
        else:
            with ThreadPoolExecutor(min(self._write_threads, len(lanes))) as pool:
                futures = [pool.submit(self._run_lane, lane, time_left, stop) for lane in lanes]
                results = [future.result() for future in futures]
        for answered, made in results:
            calls += made
            for item, outcome in answered:
                outcomes[item.index] = outcome
        if calls:
            telemetry.count("BatchPutProfileObjectCalls", calls)
        return [
            _with_profile(outcome, event) for outcome, event in zip(outcomes, events, strict=True)
        ]

    def _run_lane(
        self, lane: list[list[_Item]], time_left: TimeLeft, stop: _Stop
    ) -> tuple[list[tuple[_Item, Outcome]], int]:
        """One lane's calls in order: its outcomes, and how many calls it made."""
        answered: list[tuple[_Item, Outcome]] = []
        calls = 0
        for call in lane:
            try:
                outcomes, made = self._send(call, time_left, stop)
            except Exception as error:  # a bug here costs this call's events only
                outcomes, made = [unexpected_failure(NAME, ACTION, error)] * len(call), 0
            calls += made
            answered.extend(zip(call, outcomes, strict=True))
        return answered, calls

    def _send(
        self, call: list[_Item], time_left: TimeLeft, stop: _Stop
    ) -> tuple[list[Outcome], int]:
        """One call's outcomes (one per item), and how many calls were made: a request
        refused for its content is split until the object at fault stands alone."""
        stopped = stop.get()
        if stopped is not None:
            return [stopped] * len(call), 0
        if time_left is not None and time_left() < self._call_budget_ms:
            return [Outcome(Verdict.RETRY, "out of time")] * len(call), 0
        request = [{"Id": str(n), "Object": item.body} for n, item in enumerate(call)]
        try:
            response = self._client.batch_put_profile_object(
                DomainName=self._domain, ObjectTypeName=self._object_type, Items=request
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status in _REFUSED_STATUSES:
                if len(call) > 1:
                    return self._split(call, time_left, stop, made=1)
                code = error.response.get("Error", {}).get("Code", "")
                message = error.response.get("Error", {}).get("Message", "")
                reason = f"{ACTION} refused: {status} {code} {message}".strip()
                return [Outcome(Verdict.REJECTED, reason)], 1
            # Other 4xx included (a missing domain, object type or permission): retried, so
            # after maxReceiveCount the redrive policy parks the message where an operator
            # finds it, rather than losing it here.
            outcome = client_error_outcome(error, ACTION)
            if status in _BATCH_WIDE_STATUSES:
                stop.set(outcome.reason)
            return [outcome] * len(call), 1
        except ParamValidationError as error:
            # botocore refused the request before sending: no retry can fix the object.
            if len(call) > 1:
                return self._split(call, time_left, stop, made=0)
            return [Outcome(Verdict.REJECTED, build_refusal(NAME, "request", error))], 0
        except BotoCoreError as error:
            # Connection failures and timeouts, after the client's own retries.
            outcome = Outcome(Verdict.RETRY, f"{ACTION} failed: {type(error).__name__}")
            stop.set(outcome.reason)
            return [outcome] * len(call), 1
        except Exception as error:  # this call's failure, not the batch's
            return [unexpected_failure(NAME, ACTION, error)] * len(call), 1
        return item_outcomes(len(call), response), 1

    def _split(
        self, call: list[_Item], time_left: TimeLeft, stop: _Stop, made: int
    ) -> tuple[list[Outcome], int]:
        middle = len(call) // 2
        first, first_made = self._send(call[:middle], time_left, stop)
        second, second_made = self._send(call[middle:], time_left, stop)
        return first + second, made + first_made + second_made


def item_outcomes(count: int, response: Mapping[str, Any]) -> list[Outcome]:
    """Each item's outcome from a BatchPutProfileObject answer: listed as successful,
    delivered; failed with 429, 5xx or an unreadable code, or not listed at all, retried;
    failed with another 4xx, rejected with the service's reason."""
    succeeded = {str(item.get("Id")) for item in response.get("Successful") or []}
    failed = {str(item.get("Id")): item for item in response.get("Failed") or []}
    outcomes: list[Outcome] = []
    for n in range(count):
        key = str(n)
        if key in failed:
            code = failed[key].get("Code")
            status = code if isinstance(code, int) and not isinstance(code, bool) else 0
            message = str(failed[key].get("Message") or "")
            verdict = verdict_for_status(status)
            if verdict is Verdict.DELIVERED:  # a "failure" with a 2xx code: not proof
                verdict = Verdict.RETRY
            outcomes.append(Outcome(verdict, f"{ACTION} item failed: {status} {message}".strip()))
        elif key in succeeded:
            outcomes.append(Outcome(Verdict.DELIVERED))
        else:
            outcomes.append(Outcome(Verdict.RETRY, f"{ACTION} answered nothing for the object"))
    return outcomes


def _build(event: Event) -> str | Outcome:
    """The event's object as sent, or the rejection that keeps it from any call."""
    try:
        body = json.dumps(profile_object(event), separators=(",", ":"), ensure_ascii=False)
    except Exception as error:  # this event's alone, never the batch's
        return Outcome(Verdict.REJECTED, build_refusal(NAME, "object", error))
    if len(body) > MAX_OBJECT_CHARS:
        reason = f"object is {len(body)} characters; {ACTION} accepts {MAX_OBJECT_CHARS}"
        return Outcome(Verdict.REJECTED, reason)
    return body


def _with_profile(outcome: Outcome, event: Event) -> Outcome:
    """The profile update travels in the same object: it fares as the event does."""
    if event.profile.is_empty():
        return outcome
    return replace(outcome, profile=outcome.verdict, profile_reason=outcome.reason)


SPEC = DestinationSpec(
    name=NAME,
    settings=Settings,
    from_env=Settings.from_env,
    client=_client,
    destination=_destination,
    iam_statements=iam_statements,
)
