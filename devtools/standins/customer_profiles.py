"""A local stand-in for Amazon Connect Customer Profiles, for tests and `make dev`.

moto does not implement Customer Profiles, so this small HTTP server speaks just enough of
its REST API (rest-json, paths from botocore's model) for a real boto3 client pointed at
`url` to work: BatchPutProfileObject, PutProfileObject, PutProfileObjectType,
GetProfileObjectType, GetDomain, the reads `ops check` makes (SearchProfiles by a key,
ListProfileObjects of a profile), the deletes `forget` makes (DeleteProfileObject,
DeleteProfile), and the event trigger operations
(`devtools.standins.event_triggers`, which also says which triggers each accepted object
fires) and PutIntegration, GetIntegration and ListIntegrations (an integration whose
`EventTriggerNames` names a trigger is that trigger's action: the stand-in starts the
campaign its `Uri` names on the campaigns stand-in, `devtools.standins.campaigns`).

It checks every request against AWS's rules (`devtools.standins.strict`) and applies an
object type's keys and `_profile` targets the way the service documents them (a UNIQUE key
replaces the object with the same value; PROFILE keys find the profile, or create it, and
every PROFILE key an object carries is then associated with that profile; SECONDARY keys
are looked up last). Where AWS's documentation is silent it behaves the worst way the words
allow (docs/destinations/customer-profiles.md, "What AWS documents and what it does not"):
the object applied last wins, whatever its source timestamp; a batch's items are applied
last to first; an object whose keys find two profiles is refused; a profile at its object
limit (the object type's MaxProfileObjectCount, 1,000 across all types, a few early)
refuses new objects. It can be told to fail on purpose — a whole request, or single items
of a batch — and records what it accepted. Standard library and botocore only.

Run `.venv/bin/python -m devtools.standins.customer_profiles --port 9200 --domain
pixel-relay-dev` to serve until killed, printing one JSON line per accepted object on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from devtools.loopback import QuietServer, ServiceServer
from devtools.standins import base, campaigns, event_triggers
from devtools.standins.base import (
    JsonObject,
    RequestError,
    RestJsonHandler,
    Route,
    StandIn,
    json_object,
    print_record,
    serve,
)

# The errors every one of these operations declares in botocore's model, by HTTP status.
ERROR_TYPES: Final[dict[int, str]] = {
    400: "BadRequestException",
    403: "AccessDeniedException",
    404: "ResourceNotFoundException",
    429: "ThrottlingException",
    500: "InternalServerException",
}
MAX_OBJECT_CHARS: Final = 256_000  # stringifiedJson's max (botocore checks only the min)
MAX_ATTRIBUTE_CHARS: Final = 255  # a profile's Attributes values are string1To255
MAX_BATCH_ITEMS: Final = 10  # BatchPutProfileObjectRequestItemList's max (botocore: only min)
# A page of SearchProfiles or ListProfileObjects when MaxResults is not given. AWS documents 20
# for SearchProfiles ("The default is 20"); the stand-in uses it for both, and its callers
# page through NextToken whatever the size.
DEFAULT_PAGE: Final = 20
# Query-string members of the read operations (`max-results`, `next-token` in the URL).
_QUERY_MEMBERS: Final = {"max-results": "MaxResults", "next-token": "NextToken"}
# "The default maximum limit across all mappings per profile is 1000", and "Data limits are
# estimates [...] off by a few units in either direction" (Customer Profiles data limits):
# the stand-in refuses a new object LIMIT_SLACK objects before a limit.
MAX_OBJECTS_PER_PROFILE: Final = 1000
LIMIT_SLACK: Final = 5

# The object type field the service reads an object's source timestamp from, in the object
# type's SourceLastUpdatedTimestampFormat; the formats this stand-in can read (Java's
# DateTimeFormatter patterns, and "epoch" for seconds or milliseconds since 1970).
SOURCE_TIMESTAMP_FIELD: Final = "sourceLastUpdatedTimestamp"
_TIMESTAMP_FORMATS: Final[dict[str, str]] = {
    "yyyy-MM-dd'T'HH:mm:ss.SSSX": "%Y-%m-%dT%H:%M:%S.%f%z",
    "yyyy-MM-dd'T'HH:mm:ss.SSSZ": "%Y-%m-%dT%H:%M:%S.%f%z",
    "yyyy-MM-dd'T'HH:mm:ssX": "%Y-%m-%dT%H:%M:%S%z",
    "yyyy-MM-dd'T'HH:mm:ssZ": "%Y-%m-%dT%H:%M:%S%z",
}

# Planned faults (see ProfilesStandIn.plan_faults): a status for a whole request, or
# (status, message) for one item of a batch (status 0: the answer leaves the item out).
RequestFault = Callable[[str, JsonObject], int | None]
ItemFault = Callable[[JsonObject], tuple[int, str] | None]

_ROUTES: Final[tuple[Route, ...]] = (
    (
        "PUT",
        re.compile(r"/domains/([^/]+)/profiles/objects/batch-put-profile-object"),
        "BatchPutProfileObject",
    ),
    ("PUT", re.compile(r"/domains/([^/]+)/profiles/objects"), "PutProfileObject"),
    ("POST", re.compile(r"/domains/([^/]+)/profiles/objects"), "ListProfileObjects"),
    ("POST", re.compile(r"/domains/([^/]+)/profiles/search"), "SearchProfiles"),
    ("POST", re.compile(r"/domains/([^/]+)/profiles/objects/delete"), "DeleteProfileObject"),
    ("POST", re.compile(r"/domains/([^/]+)/profiles/delete"), "DeleteProfile"),
    ("PUT", re.compile(r"/domains/([^/]+)/object-types/([^/]+)"), "PutProfileObjectType"),
    ("GET", re.compile(r"/domains/([^/]+)/object-types/([^/]+)"), "GetProfileObjectType"),
    ("GET", re.compile(r"/domains/([^/]+)"), "GetDomain"),
    ("POST", re.compile(r"/domains/([^/]+)/event-triggers/([^/]+)"), "CreateEventTrigger"),
    ("PUT", re.compile(r"/domains/([^/]+)/event-triggers/([^/]+)"), "UpdateEventTrigger"),
    ("GET", re.compile(r"/domains/([^/]+)/event-triggers/([^/]+)"), "GetEventTrigger"),
    ("GET", re.compile(r"/domains/([^/]+)/event-triggers"), "ListEventTriggers"),
    ("PUT", re.compile(r"/domains/([^/]+)/integrations"), "PutIntegration"),
    ("POST", re.compile(r"/domains/([^/]+)/integrations"), "GetIntegration"),
    ("GET", re.compile(r"/domains/([^/]+)/integrations"), "ListIntegrations"),
)
INTEGRATION_OPERATIONS: Final = frozenset({"PutIntegration", "GetIntegration", "ListIntegrations"})


@dataclass(frozen=True)
class AcceptedObject:
    """One object answered 200, with the profile it was put on (None: no PROFILE key)."""

    domain: str
    object_type: str
    object: JsonObject
    unique_key: str
    profile_id: str | None
    # The domain's event triggers this object fired (devtools.standins.event_triggers).
    fired_triggers: tuple[event_triggers.TriggerVerdict, ...] = ()


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received, and the HTTP status it was answered with."""

    operation: str
    domain: str
    body: JsonObject | None
    status: int


@dataclass
class _Domain:
    object_types: dict[str, JsonObject] = field(default_factory=dict)
    objects: dict[tuple[str, str], JsonObject] = field(default_factory=dict)
    object_keys: dict[tuple[str, str], str] = field(default_factory=dict)
    # (object type, unique key value) -> the profile the object is on (None: none).
    object_profiles: dict[tuple[str, str], str | None] = field(default_factory=dict)
    profiles: dict[str, JsonObject] = field(default_factory=dict)
    profile_index: dict[tuple[str, str], str] = field(default_factory=dict)
    triggers: event_triggers.EventTriggers = field(default_factory=event_triggers.EventTriggers)
    # Integrations by Uri (PutIntegration).
    integrations: dict[str, JsonObject] = field(default_factory=dict)
    created_at: float = field(default_factory=time.time)


class ProfilesStandIn(StandIn[RecordedRequest, AcceptedObject]):
    """Customer Profiles over HTTP on loopback, with programmable failures and recording."""

    def __init__(
        self,
        domains: Iterable[str] = ("pixel-relay-dev",),
        host: str = "127.0.0.1",
        port: int = 0,
        on_accept: Callable[[AcceptedObject], None] | None = None,
        campaigns_url: str | None = None,
    ) -> None:
        """`on_accept` is called for each accepted object, in order, with the lock held.
        `campaigns_url`: the campaigns stand-in a fired trigger's integration starts."""
        super().__init__(host, port, on_accept)
        self._domains = {name: _Domain() for name in domains}
        self._campaigns_url = campaigns_url
        self._failures: dict[str, deque[int]] = {}
        self._rejections: dict[str, tuple[int, str]] = {}
        self._item_failures: deque[int] = deque()
        self._request_fault: RequestFault | None = None
        self._item_fault: ItemFault | None = None

    _name = "profiles-standin"

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    # Rules

    def add_domain(self, name: str) -> None:
        with self._lock:
            self._domains.setdefault(name, _Domain())

    def fail_next_requests(
        self, status: int, count: int = 1, operation: str = "BatchPutProfileObject"
    ) -> None:
        """Answer the next `count` requests for `operation` with the error for `status`."""
        if status not in ERROR_TYPES:
            raise ValueError(f"Customer Profiles declares no error for HTTP {status}")
        with self._lock:
            self._failures.setdefault(operation, deque()).extend([status] * count)

    def fail_next_items(self, status: int, count: int = 1) -> None:
        """Answer the next `count` items of BatchPutProfileObject requests as failed with
        `status` (a per-item Code), or, with status 0, leave them out of the answer."""
        if status != 0 and not 400 <= status <= 599:
            raise ValueError(f"an item failure needs an error status (or 0), not {status}")
        with self._lock:
            self._item_failures.extend([status] * count)

    def plan_faults(
        self, request: RequestFault | None = None, item: ItemFault | None = None
    ) -> None:
        """Faults decided by content rather than by order, for soaks whose batches form by
        timing: `request(operation, body)` may answer the error status for that request;
        `item(object)` may answer (status, message) for one object of a batch (status 0:
        left out of the answer). Both run with the lock held; None clears them."""
        with self._lock:
            self._request_fault = request
            self._item_fault = item

    def reject_events(
        self, event_type: str, message: str = "Rejected by stand-in rule", status: int = 400
    ) -> None:
        """Refuse every object whose `event_type` is this with `status`: a PutProfileObject
        request, or that item of a BatchPutProfileObject request."""
        if status not in ERROR_TYPES:
            raise ValueError(f"Customer Profiles declares no error for HTTP {status}")
        with self._lock:
            self._rejections[event_type] = (status, message)

    def reset(self) -> None:
        """Forget rules, requests and accepted objects; domains and object types stay."""
        with self._lock:
            self._failures.clear()
            self._rejections.clear()
            self._item_failures.clear()
            self._delays.clear()
            self._request_fault = self._item_fault = None
            self._forget_records()

    # Records

    @property
    def accepted_objects(self) -> list[AcceptedObject]:
        """Every object answered 200, in order, a replaced one included (a copy)."""
        return self._accepted_records()

    def stored_objects(self, domain: str, object_type: str) -> list[JsonObject]:
        """The objects the domain holds now: one per UNIQUE key value."""
        with self._lock:
            stored = self._domains[domain].objects
            return [dict(o) for (kind, _), o in stored.items() if kind == object_type]

    def profile(self, domain: str, key_name: str, value: str) -> JsonObject | None:
        """The profile a key (e.g. a PROFILE key's value) finds, as a copy."""
        with self._lock:
            state = self._domains[domain]
            profile_id = state.profile_index.get((key_name, value))
            return (
                None if profile_id is None else json.loads(json.dumps(state.profiles[profile_id]))
            )

    # Request handling (called from server threads)

    def _respond(
        self,
        operation: str,
        path: Sequence[str],
        raw: bytes,
        query: Mapping[str, str] | None = None,
    ) -> tuple[int, JsonObject, float]:
        """The status and body to answer, and how long to wait before answering."""
        with self._lock:
            delay = self._next_delay()
            status, body = self._answer(operation, path, raw, query or {})
            return status, body, delay

    def _answer(
        self, operation: str, path: Sequence[str], raw: bytes, query: Mapping[str, str]
    ) -> tuple[int, JsonObject]:
        """Decide and record the answer to one request; the lock is held."""
        domain = path[0]
        body: JsonObject | None = None
        try:
            body = _parse_object(raw)
            body.update(_query_members(query))
            failures = self._failures.get(operation)
            planned = self._request_fault(operation, body) if self._request_fault else None
            status = failures.popleft() if failures else planned
            if status is not None:
                raise RequestError(status, f"Stand-in failure ({status})")
            # A request AWS would refuse is refused before anything is looked up.
            problems = model_problems(operation, path, body)
            if problems:
                raise RequestError(400, problems)
            if domain not in self._domains:
                raise RequestError(404, f"Domain {domain} was not found")
            answer = self._handle(operation, path, body)
        except RequestError as error:
            self._record(RecordedRequest(operation, domain, body, error.status))
            return error.status, {"Message": error.message}
        self._record(RecordedRequest(operation, domain, body, 200))
        return 200, answer

    def _handle(self, operation: str, path: Sequence[str], body: JsonObject) -> JsonObject:
        state = self._domains[path[0]]
        if operation == "GetDomain":
            return {
                "DomainName": path[0],
                "DefaultExpirationDays": 366,
                "CreatedAt": state.created_at,
                "LastUpdatedAt": state.created_at,
            }
        if operation == "GetProfileObjectType":
            return dict(_object_type(state, path[1]))
        if operation == "PutProfileObjectType":
            return self._put_object_type(state, path[1], body)
        if operation in event_triggers.OPERATIONS:
            name = path[1] if len(path) > 1 else None
            return state.triggers.handle(operation, name, body, state.object_types)
        if operation in INTEGRATION_OPERATIONS:
            return _integration(state, path[0], operation, body)
        if operation == "BatchPutProfileObject":
            return self._batch_put(path[0], state, body)
        if operation == "SearchProfiles":
            return _search_profiles(state, body)
        if operation == "ListProfileObjects":
            return _list_profile_objects(state, body)
        if operation == "DeleteProfileObject":
            return _delete_profile_object(state, body)
        if operation == "DeleteProfile":
            return _delete_profile(state, body)
        return self._put_object(path[0], state, body)

    def _batch_put(self, domain: str, state: _Domain, body: JsonObject) -> JsonObject:
        """Each item as a PutProfileObject of its own, in order: its failure is its own."""
        _object_type(state, body["ObjectTypeName"])  # a missing type fails the request
        if len(body["Items"]) > MAX_BATCH_ITEMS:
            count = len(body["Items"])
            raise RequestError(400, f"Items: {count} items; at most {MAX_BATCH_ITEMS} a request")
        ids = [item["Id"] for item in body["Items"]]
        if len(set(ids)) != len(ids):
            raise RequestError(400, "Item ids must be unique within a request")
        successful: list[JsonObject] = []
        failed: list[JsonObject] = []
        # Planned failures go to the items in request order; the items are then applied last
        # to first (AWS does not say in which order a batch's objects are applied).
        planned_failures = [self._planned_item_failure(item["Object"]) for item in body["Items"]]
        for item, planned in reversed(list(zip(body["Items"], planned_failures, strict=True))):
            if planned is not None:
                status, message = planned
                if status:
                    failed.append({"Id": item["Id"], "Code": status, "Message": message})
                continue
            single = {"ObjectTypeName": body["ObjectTypeName"], "Object": item["Object"]}
            try:
                answer = self._put_object(domain, state, single)
            except RequestError as error:
                failed.append({"Id": item["Id"], "Code": error.status, "Message": error.message})
                continue
            successful.append(
                {"Id": item["Id"], "ProfileObjectUniqueKey": answer["ProfileObjectUniqueKey"]}
            )
        return {"Successful": successful, "Failed": failed}

    def _planned_item_failure(self, text: str) -> tuple[int, str] | None:
        if self._item_failures:
            status = self._item_failures.popleft()
            return status, f"Stand-in item failure ({status})"
        if self._item_fault is None:
            return None
        try:
            source = json_object(text.encode())
        except ValueError:
            return None
        return self._item_fault(source)

    def _put_object_type(self, state: _Domain, name: str, body: JsonObject) -> JsonObject:
        if name.startswith("_"):
            raise RequestError(400, "Object type names starting with _ are reserved")
        fields = body.get("Fields", {})
        keys = body.get("Keys", {})
        if not keys:
            raise RequestError(400, "An object type needs at least one key")
        unique = [
            k
            for k, ks in keys.items()
            for key in ks
            if "UNIQUE" in key.get("StandardIdentifiers", [])
        ]
        if len(unique) > 1:
            raise RequestError(400, f"Only one UNIQUE key is allowed; found {', '.join(unique)}")
        for key_name, key_list in keys.items():
            for key in key_list:
                missing = [n for n in key.get("FieldNames", []) if n not in fields]
                if missing:
                    raise RequestError(400, f"Key {key_name} names undefined fields {missing}")
        pattern = body.get("SourceLastUpdatedTimestampFormat")
        if pattern is not None and pattern != "epoch" and pattern not in _TIMESTAMP_FORMATS:
            known = ", ".join(["epoch", *_TIMESTAMP_FORMATS])
            raise RequestError(400, f"The stand-in reads source timestamps in {known} only")
        available = MAX_OBJECTS_PER_PROFILE - sum(
            int(other.get("MaxProfileObjectCount", 0))
            for other_name, other in state.object_types.items()
            if other_name != name
        )
        wanted = body.get("MaxProfileObjectCount")
        if wanted is not None and int(wanted) > available:
            raise RequestError(
                400, f"MaxProfileObjectCount {wanted} is over the {available} still available"
            )
        now = time.time()
        previous = state.object_types.get(name, {})
        definition = {
            **body,
            "ObjectTypeName": name,
            "CreatedAt": previous.get("CreatedAt", now),
            "LastUpdatedAt": now,
        }
        if wanted is not None:
            definition["MaxAvailableProfileObjectCount"] = available - int(wanted)
        state.object_types[name] = definition
        return dict(definition)

    def _put_object(self, domain: str, state: _Domain, body: JsonObject) -> JsonObject:
        object_type = _object_type(state, body["ObjectTypeName"])
        text = body["Object"]
        if len(text) > MAX_OBJECT_CHARS:
            raise RequestError(400, f"Object exceeds {MAX_OBJECT_CHARS} characters")
        source = _parse_object(text.encode())
        if not source:
            raise RequestError(400, "Object is not a JSON object")
        rejection = self._rejections.get(str(source.get("event_type")))
        if rejection is not None:
            raise RequestError(*rejection)
        values = {
            name: _read(source, spec.get("Source", ""))
            for name, spec in object_type.get("Fields", {}).items()
        }
        unique = _key_value(object_type, values, "UNIQUE")
        if unique is None:
            raise RequestError(400, "Object has no value for its UNIQUE key")
        targets = _targets(object_type, values)
        type_name = body["ObjectTypeName"]
        found = _found_profile(state, object_type, values)
        self._check_object_limit(state, type_name, unique[1], found, object_type)
        profile_id = _apply_to_profile(state, object_type, values, targets, found)
        state.objects[(type_name, unique[1])] = source
        if profile_id is not None:
            state.object_profiles[(type_name, unique[1])] = profile_id
        object_key = state.object_keys.setdefault((type_name, unique[1]), str(uuid.uuid4()))
        when = _source_time(object_type, values)
        fired = state.triggers.evaluate(type_name, values, source, profile_id, when)
        fired = [self._start_campaign(state, verdict) for verdict in fired]
        record = AcceptedObject(domain, type_name, source, unique[1], profile_id, tuple(fired))
        self._accept(record)
        return {"ProfileObjectUniqueKey": object_key}

    def _check_object_limit(
        self,
        state: _Domain,
        type_name: str,
        unique: str,
        profile_id: str | None,
        object_type: JsonObject,
    ) -> None:
        """Refuse a new object on a profile at its limit: the object type's
        MaxProfileObjectCount, or 1,000 across all object types (a replacement on the same
        profile adds nothing). AWS does not say what happens at the limit: the worst its
        words allow is that the newest object is not taken, and that is what happens here,
        LIMIT_SLACK objects early ("off by a few units in either direction")."""
        if profile_id is None or state.object_profiles.get((type_name, unique)) == profile_id:
            return
        on_profile = [key for key, held in state.object_profiles.items() if held == profile_id]
        of_type = sum(1 for kind, _ in on_profile if kind == type_name)
        most = object_type.get("MaxProfileObjectCount")
        if most is not None and of_type >= int(most) - LIMIT_SLACK:
            raise RequestError(
                400, f"Profile {profile_id} has reached its object limit for {type_name}"
            )
        if len(on_profile) >= MAX_OBJECTS_PER_PROFILE - LIMIT_SLACK:
            raise RequestError(400, f"Profile {profile_id} has reached its object limit")

    def _start_campaign(
        self, state: _Domain, verdict: event_triggers.TriggerVerdict
    ) -> event_triggers.TriggerVerdict:
        """A fired trigger's action: the campaign whose integration names the trigger gets
        a PutProfileOutboundRequestBatch for the profile, on the campaigns stand-in."""
        if not verdict.would_start or verdict.profile_id is None:
            return verdict
        linked = [
            uri
            for uri, integration in sorted(state.integrations.items())
            if verdict.name in integration.get("EventTriggerNames", [])
        ]
        if not linked:
            return replace(verdict, campaign_reason="no campaign is linked (PutIntegration)")
        arn = linked[0]
        if self._campaigns_url is None:
            return replace(verdict, campaign_arn=arn, campaign_reason="no campaigns stand-in")
        reached, why = campaigns.start_campaign(
            self._campaigns_url, arn, verdict.profile_id, uuid.uuid4().hex
        )
        return replace(verdict, campaign_arn=arn, campaign_reached=reached, campaign_reason=why)


def _found_profile(
    state: _Domain, object_type: JsonObject, values: dict[str, str | None]
) -> str | None:
    """The existing profile the object's PROFILE keys find (SECONDARY ones last), or None.
    Keys that find two different profiles: AWS does not say which wins, and the worst its
    words allow is that the object is refused, as here."""
    keys = _profile_keys(object_type, values)
    primary = [key for key, identifiers in keys if "SECONDARY" not in identifiers]
    secondary = [key for key, identifiers in keys if "SECONDARY" in identifiers]
    found = [state.profile_index[key] for key in primary if key in state.profile_index]
    if len(set(found)) > 1:
        names = ", ".join(sorted({key[0] for key in primary if key in state.profile_index}))
        raise RequestError(400, f"The object's keys ({names}) find {len(set(found))} profiles")
    if not found:
        found = [state.profile_index[key] for key in secondary if key in state.profile_index]
    return found[0] if found else None


def _apply_to_profile(
    state: _Domain,
    object_type: JsonObject,
    values: dict[str, str | None],
    targets: dict[str, str],
    found: str | None,
) -> str | None:
    """The object's profile: `found`, or a new one if the type allows; its keys are
    associated with it and the targets applied. The object applied last wins: AWS
    describes SourceLastUpdatedTimestampFormat as a format, not as an order."""
    keys = _profile_keys(object_type, values)
    if not keys:
        return None
    created = found is None
    if found is None:
        if not object_type.get("AllowProfileCreation", False):
            return None
        profile_id = uuid.uuid4().hex
        state.profiles[profile_id] = {"ProfileId": profile_id, "Attributes": {}}
    else:
        profile_id = found
    for key, identifiers in keys:
        if "LOOKUP_ONLY" in identifiers or ("NEW_ONLY" in identifiers and not created):
            continue
        state.profile_index.setdefault(key, profile_id)
    profile = state.profiles[profile_id]
    for path, value in targets.items():
        *parents, leaf = path.split(".")
        node = profile
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return profile_id


def _integration(state: _Domain, domain: str, operation: str, body: JsonObject) -> JsonObject:
    """PutIntegration, GetIntegration and ListIntegrations: an integration by its Uri. One
    naming an event trigger is that trigger's action, which must exist."""
    now = time.time()
    if operation == "ListIntegrations":
        return {"Items": [dict(item) for _, item in sorted(state.integrations.items())]}
    uri = str(body["Uri"])
    current = state.integrations.get(uri)
    if operation == "GetIntegration":
        if current is None:
            raise RequestError(404, f"Integration {uri} was not found")
        return dict(current)
    for name in body.get("EventTriggerNames", []):
        if name not in state.triggers.triggers:
            raise RequestError(404, f"Event trigger {name} was not found")
    object_type = body.get("ObjectTypeName")
    if object_type is not None and object_type not in state.object_types:
        raise RequestError(404, f"Object type {object_type} was not found")
    integration = {
        **{k: v for k, v in body.items() if k != "DomainName"},
        "DomainName": domain,
        "CreatedAt": (current or {}).get("CreatedAt", now),
        "LastUpdatedAt": now,
    }
    state.integrations[uri] = integration
    return dict(integration)


def model_problems(operation: str, path: Sequence[str], body: JsonObject) -> str:
    """What AWS would refuse in a request ("" if nothing): botocore's whole model and AWS's
    documented limits, path and query members included."""
    params = dict(body)
    params["DomainName"] = path[0]
    if len(path) > 1:
        params["EventTriggerName" if "EventTrigger" in operation else "ObjectTypeName"] = path[1]
    return base.model_problems("customer-profiles", operation, params)


def _query_members(query: Mapping[str, str]) -> JsonObject:
    """The read operations' query-string members (`max-results`, `next-token`), as typed
    members, so botocore's model checks them like the body's."""
    members: JsonObject = {}
    for key, value in query.items():
        name = _QUERY_MEMBERS.get(key)
        if name is None:
            raise RequestError(400, f"Unknown query parameter {key}")
        members[name] = int(value) if name == "MaxResults" and value.isdigit() else value
    return members


# Reads and deletes (ops check, forget) ----------------------------------------------------
#
# What `ops check` and `make ops ARGS="forget ..."` call. In AWS's words (API reference):
# SearchProfiles "searches for profiles within a specific domain using one or more
# predefined search keys ... and/or custom-defined search keys" (an object type's keys are
# searchable: "a Key is a special element that can be used to search for a customer
# profile"), with AND or OR over up to 5 key-values pairs, 20 profiles a page unless
# MaxResults says otherwise;
# ListProfileObjects "returns a list of objects associated with a profile of a given
# ProfileObjectType" (its ObjectFilter "is only supported for ObjectTypeName _asset, _case
# and _order"); DeleteProfileObject "removes an object associated with a profile";
# DeleteProfile "deletes the standard customer profile and all data pertaining to the
# profile", which this stand-in takes to include its objects, its keys and its values. An
# unknown profile or object is answered 404 (ResourceNotFoundException, which each declares).


def _page(items: list[JsonObject], body: JsonObject) -> JsonObject:
    """One page of `items` and the token for the next (an offset: opaque to the client)."""
    start = (
        int(body.get("NextToken", "0") or "0") if str(body.get("NextToken", "0")).isdigit() else -1
    )
    if start < 0 or start > len(items):
        raise RequestError(400, "NextToken is not one this stand-in gave")
    size = int(body.get("MaxResults", DEFAULT_PAGE))
    page: JsonObject = {"Items": items[start : start + size]}
    if start + size < len(items):
        page["NextToken"] = str(start + size)
    return page


def _search_profiles(state: _Domain, body: JsonObject) -> JsonObject:
    searches = [(body["KeyName"], body["Values"])] + [
        (key["KeyName"], key["Values"]) for key in body.get("AdditionalSearchKeys", [])
    ]
    found: list[dict[str, list[str]]] = []  # per search: profile id -> values it matched
    for key_name, values in searches:
        matched: dict[str, list[str]] = {}
        for value in values:
            if key_name == "_profileId":
                profile_id = value if value in state.profiles else None
            else:
                profile_id = state.profile_index.get((key_name, value))
            if profile_id is not None:
                matched.setdefault(profile_id, []).append(value)
        found.append(matched)
    ids = list(dict.fromkeys(p for matched in found for p in matched))
    if body.get("LogicalOperator", "OR") == "AND":
        ids = [p for p in ids if all(p in matched for matched in found)]
    items: list[JsonObject] = []
    for profile_id in ids:
        profile = json.loads(json.dumps(state.profiles[profile_id]))
        profile["FoundByItems"] = [
            {"KeyName": key_name, "Values": matched[profile_id]}
            for (key_name, _), matched in zip(searches, found, strict=True)
            if profile_id in matched
        ]
        items.append(profile)
    return _page(items, body)


def _list_profile_objects(state: _Domain, body: JsonObject) -> JsonObject:
    """The objects of one object type on one profile, oldest first."""
    if "ObjectFilter" in body:
        raise RequestError(400, "The stand-in lists without an ObjectFilter only")
    _object_type(state, body["ObjectTypeName"])
    profile_id = body["ProfileId"]
    if profile_id not in state.profiles:
        raise RequestError(404, f"Profile {profile_id} was not found")
    items = [
        {
            "ObjectTypeName": kind,
            "ProfileObjectUniqueKey": state.object_keys[(kind, unique)],
            "Object": json.dumps(source),
        }
        for (kind, unique), source in state.objects.items()
        if kind == body["ObjectTypeName"]
        and state.object_profiles.get((kind, unique)) == profile_id
    ]
    return _page(items, body)


def _delete_profile_object(state: _Domain, body: JsonObject) -> JsonObject:
    """One object of a profile, by its unique key ("Removes an object associated with a
    profile of a given ProfileObjectType", DeleteProfileObject)."""
    _object_type(state, body["ObjectTypeName"])
    profile_id = body["ProfileId"]
    if profile_id not in state.profiles:
        raise RequestError(404, f"Profile {profile_id} was not found")
    for found, key in list(state.object_keys.items()):
        if (
            found[0] == body["ObjectTypeName"]
            and key == body["ProfileObjectUniqueKey"]
            and state.object_profiles.get(found) == profile_id
        ):
            del state.objects[found]
            del state.object_keys[found]
            del state.object_profiles[found]
            return {"Message": "Profile object deleted"}
    raise RequestError(404, f"Profile object {body['ProfileObjectUniqueKey']} was not found")


def _delete_profile(state: _Domain, body: JsonObject) -> JsonObject:
    """The profile and every object and key on it ("Deletes the standard customer profile and
    all data pertaining to the profile", DeleteProfile)."""
    profile_id = body["ProfileId"]
    if state.profiles.pop(profile_id, None) is None:
        raise RequestError(404, f"Profile {profile_id} was not found")
    for key in [k for k, owner in state.profile_index.items() if owner == profile_id]:
        del state.profile_index[key]
    for key in [k for k, owner in state.object_profiles.items() if owner == profile_id]:
        del state.object_profiles[key]
        state.objects.pop(key, None)
        state.object_keys.pop(key, None)
    return {"Message": f"Profile {profile_id} deleted"}


def _object_type(state: _Domain, name: str) -> JsonObject:
    try:
        return state.object_types[name]
    except KeyError:
        raise RequestError(404, f"Object type {name} was not found") from None


def _read(source: JsonObject, accessor: str) -> str | None:
    """A `_source.a.b` accessor's scalar value as text (Handlebars sources are not read)."""
    if not accessor.startswith("_source."):
        return None
    node: Any = source
    for part in accessor.removeprefix("_source.").split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, bool) or not isinstance(node, str | int | float) or node == "":
        return None
    return str(node)


def _key_value(
    object_type: JsonObject, values: dict[str, str | None], identifier: str
) -> tuple[str, str] | None:
    """(key name, value) of the first key with this standard identifier that has a value."""
    for key_name, key_list in object_type.get("Keys", {}).items():
        for key in key_list:
            if identifier not in key.get("StandardIdentifiers", []):
                continue
            parts = [values.get(name) for name in key.get("FieldNames", [])]
            if parts and all(p is not None for p in parts):
                return key_name, "|".join(p for p in parts if p is not None)
    return None


def _profile_keys(
    object_type: JsonObject, values: dict[str, str | None]
) -> list[tuple[tuple[str, str], list[str]]]:
    """Every PROFILE key the object has a value for: ((key name, value), its identifiers)."""
    found: list[tuple[tuple[str, str], list[str]]] = []
    for key_name, key_list in object_type.get("Keys", {}).items():
        for key in key_list:
            identifiers = key.get("StandardIdentifiers", [])
            if "PROFILE" not in identifiers:
                continue
            parts = [values.get(name) for name in key.get("FieldNames", [])]
            if parts and all(p is not None for p in parts):
                value = "|".join(p for p in parts if p is not None)
                found.append(((key_name, value), identifiers))
    return found


def _source_time(object_type: JsonObject, values: dict[str, str | None]) -> float | None:
    """The object's source timestamp (seconds), if its type names one and it has a value."""
    pattern = object_type.get("SourceLastUpdatedTimestampFormat")
    text = values.get(SOURCE_TIMESTAMP_FIELD)
    if not pattern or text is None:
        return None
    try:
        if pattern == "epoch":
            number = float(text)
            return number / 1000 if number > 1e11 else number
        return datetime.strptime(text, _TIMESTAMP_FORMATS[pattern]).timestamp()
    except (KeyError, ValueError):
        raise RequestError(
            400, f"{SOURCE_TIMESTAMP_FIELD} {text!r} does not match the format {pattern}"
        ) from None


def _targets(object_type: JsonObject, values: dict[str, str | None]) -> dict[str, str]:
    """`_profile` paths (without the prefix) and the values the object gives them."""
    targets: dict[str, str] = {}
    for name, spec in object_type.get("Fields", {}).items():
        target, value = spec.get("Target", ""), values.get(name)
        if not target.startswith("_profile.") or value is None:
            continue
        if target.startswith("_profile.Attributes.") and len(value) > MAX_ATTRIBUTE_CHARS:
            raise RequestError(400, f"{target} exceeds {MAX_ATTRIBUTE_CHARS} characters")
        targets[target.removeprefix("_profile.")] = value
    return targets


def _parse_object(raw: bytes) -> JsonObject:
    if not raw:
        return {}
    try:
        return json_object(raw)
    except ValueError as error:
        raise RequestError(400, str(error)) from None


class _Handler(RestJsonHandler[ProfilesStandIn]):
    server_version = "ProfilesStandIn"

    def do_GET(self) -> None:
        self._dispatch()

    def do_PUT(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def do_DELETE(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        raw = self.read_body()
        url = urlsplit(self.path)
        path = url.path
        query = dict(parse_qsl(url.query, keep_blank_values=True))
        routed = self.route(_ROUTES, path)
        if routed is None:
            self.send_unknown_operation(path)
            return
        operation, params = routed
        status, body, delay = self.service._respond(operation, params, raw, query)
        if self.service._wait_to_answer(delay):
            self.send_answer(status, body, error_type=ERROR_TYPES.get(status))


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed, printing each accepted object as one JSON line on stdout."""
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.standins.customer_profiles", description=__doc__
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9200)
    parser.add_argument(
        "--domain", action="append", required=True, help="a known domain; repeat for more"
    )
    args = parser.parse_args(argv)

    standin = ProfilesStandIn(args.domain, args.host, args.port, on_accept=print_record)
    domains = ", ".join(args.domain)
    return serve(
        standin,
        lambda url: (
            f"Customer Profiles stand-in on {url} for {domains}; "
            "define the object type with .venv/bin/python -m devtools.deploy.profiles_setup"
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
