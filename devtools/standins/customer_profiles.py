"""A local stand-in for Amazon Connect Customer Profiles, for tests and `make dev`.

moto does not implement Customer Profiles, so this small HTTP server speaks just enough of
its REST API (rest-json, paths from botocore's model) for a real boto3 client pointed at
`url` to work: PutProfileObject, PutProfileObjectType, GetProfileObjectType, GetDomain and
the event trigger operations (`devtools.standins.event_triggers`, which also says which
triggers each accepted object fires).
It checks every request against botocore's model, applies an object type's keys and its
`_profile` targets the way the service documents them (a UNIQUE key replaces the object
with the same value; a PROFILE key finds or creates the profile), can be told to fail on
purpose, and records what it accepted. Standard library only.

Run `python -m devtools.standins.customer_profiles --port 9200 --domain pixel-relay-dev` to serve
until killed, printing one JSON line per accepted object on stdout.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final
from urllib.parse import unquote, urlsplit

from devtools.loopback import QuietServer, ServiceServer
from devtools.standins import base, event_triggers
from devtools.standins.base import (
    JsonObject,
    RequestError,
    RestJsonHandler,
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

_ROUTES: Final[tuple[tuple[str, re.Pattern[str], str], ...]] = (
    ("PUT", re.compile(r"/domains/([^/]+)/profiles/objects"), "PutProfileObject"),
    ("PUT", re.compile(r"/domains/([^/]+)/object-types/([^/]+)"), "PutProfileObjectType"),
    ("GET", re.compile(r"/domains/([^/]+)/object-types/([^/]+)"), "GetProfileObjectType"),
    ("GET", re.compile(r"/domains/([^/]+)"), "GetDomain"),
    ("POST", re.compile(r"/domains/([^/]+)/event-triggers/([^/]+)"), "CreateEventTrigger"),
    ("PUT", re.compile(r"/domains/([^/]+)/event-triggers/([^/]+)"), "UpdateEventTrigger"),
    ("GET", re.compile(r"/domains/([^/]+)/event-triggers/([^/]+)"), "GetEventTrigger"),
    ("GET", re.compile(r"/domains/([^/]+)/event-triggers"), "ListEventTriggers"),
)


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
    profiles: dict[str, JsonObject] = field(default_factory=dict)
    profile_index: dict[tuple[str, str], str] = field(default_factory=dict)
    triggers: event_triggers.EventTriggers = field(default_factory=event_triggers.EventTriggers)
    created_at: float = field(default_factory=time.time)


class ProfilesStandIn(StandIn[RecordedRequest, AcceptedObject]):
    """Customer Profiles over HTTP on loopback, with programmable failures and recording."""

    def __init__(
        self,
        domains: Iterable[str] = ("pixel-relay-dev",),
        host: str = "127.0.0.1",
        port: int = 0,
        on_accept: Callable[[AcceptedObject], None] | None = None,
    ) -> None:
        """`on_accept` is called for each accepted object, in order, with the lock held."""
        super().__init__(host, port, on_accept)
        self._domains = {name: _Domain() for name in domains}
        self._failures: dict[str, deque[int]] = {}
        self._rejections: dict[str, str] = {}
        self._request_fault: Callable[[str, JsonObject], int | None] | None = None

    _name = "profiles-standin"

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    # Rules

    def add_domain(self, name: str) -> None:
        with self._lock:
            self._domains.setdefault(name, _Domain())

    def fail_next_requests(
        self, status: int, count: int = 1, operation: str = "PutProfileObject"
    ) -> None:
        """Answer the next `count` requests for `operation` with the error for `status`."""
        if status not in ERROR_TYPES:
            raise ValueError(f"Customer Profiles declares no error for HTTP {status}")
        with self._lock:
            self._failures.setdefault(operation, deque()).extend([status] * count)

    def plan_faults(self, request: Callable[[str, JsonObject], int | None] | None) -> None:
        """A fault decided by content rather than by order, for soaks whose batches form by
        timing: `request(operation, body)` may answer the error status for that request.
        Runs with the lock held; None clears it."""
        with self._lock:
            self._request_fault = request

    def reject_events(self, event_type: str, message: str = "Rejected by stand-in rule") -> None:
        """Answer 400 BadRequestException for every object whose `event_type` is this."""
        with self._lock:
            self._rejections[event_type] = message

    def reset(self) -> None:
        """Forget rules, requests and accepted objects; domains and object types stay."""
        with self._lock:
            self._failures.clear()
            self._rejections.clear()
            self._request_fault = None
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

    def _respond(self, operation: str, path: Sequence[str], raw: bytes) -> tuple[int, JsonObject]:
        with self._lock:
            domain = path[0]
            body: JsonObject | None = None
            try:
                body = _parse_object(raw)
                failures = self._failures.get(operation)
                planned = self._request_fault(operation, body) if self._request_fault else None
                status = failures.popleft() if failures else planned
                if status is not None:
                    raise RequestError(status, f"Stand-in failure ({status})")
                if domain not in self._domains:
                    raise RequestError(404, f"Domain {domain} was not found")
                problems = model_problems(operation, path, body)
                if problems:
                    raise RequestError(400, problems)
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
        return self._put_object(path[0], state, body)

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
        now = time.time()
        previous = state.object_types.get(name, {})
        definition = {
            **body,
            "ObjectTypeName": name,
            "CreatedAt": previous.get("CreatedAt", now),
            "LastUpdatedAt": now,
        }
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
            raise RequestError(400, rejection)
        values = {
            name: _read(source, spec.get("Source", ""))
            for name, spec in object_type.get("Fields", {}).items()
        }
        unique = _key_value(object_type, values, "UNIQUE")
        if unique is None:
            raise RequestError(400, "Object has no value for its UNIQUE key")
        targets = _targets(object_type, values)
        profile_id = self._profile_for(state, object_type, values, targets)
        type_name = body["ObjectTypeName"]
        state.objects[(type_name, unique[1])] = source
        object_key = state.object_keys.setdefault((type_name, unique[1]), str(uuid.uuid4()))
        fired = state.triggers.evaluate(type_name, values, source, profile_id)
        record = AcceptedObject(domain, type_name, source, unique[1], profile_id, tuple(fired))
        self._accept(record)
        return {"ProfileObjectUniqueKey": object_key}

    def _profile_for(
        self,
        state: _Domain,
        object_type: JsonObject,
        values: dict[str, str | None],
        targets: dict[str, str],
    ) -> str | None:
        """Find the profile by the PROFILE key, create it if allowed, apply the targets."""
        key = _key_value(object_type, values, "PROFILE")
        if key is None:
            return None
        profile_id = state.profile_index.get(key)
        if profile_id is None:
            if not object_type.get("AllowProfileCreation", False):
                return None
            profile_id = uuid.uuid4().hex
            state.profiles[profile_id] = {"ProfileId": profile_id, "Attributes": {}}
            state.profile_index[key] = profile_id
        profile = state.profiles[profile_id]
        for path, value in targets.items():
            *parents, leaf = path.split(".")
            node = profile
            for part in parents:
                node = node.setdefault(part, {})
            node[leaf] = value
        return profile_id


def model_problems(operation: str, path: Sequence[str], body: JsonObject) -> str:
    """What botocore's own model says is wrong with a request ("" if nothing)."""
    params = dict(body)
    params["DomainName"] = path[0]
    if len(path) > 1:
        params["EventTriggerName" if "EventTrigger" in operation else "ObjectTypeName"] = path[1]
    return base.model_problems("customer-profiles", operation, params)


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
        path = urlsplit(self.path).path
        for method, pattern, operation in _ROUTES:
            match = pattern.fullmatch(path)
            if method == self.command and match:
                params = [unquote(group) for group in match.groups()]
                status, body = self.service._respond(operation, params, raw)
                self.send_answer(status, body, error_type=ERROR_TYPES.get(status))
                return
        message = f"No operation for {self.command} {path}"
        self.send_answer(404, {"Message": message}, error_type="UnknownOperationException")


def main(argv: Sequence[str] | None = None) -> int:
    """Serve until killed, printing each accepted object as one JSON line on stdout."""
    parser = argparse.ArgumentParser(
        prog="python -m devtools.standins.customer_profiles", description=__doc__
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
            "define the object type with python -m devtools.deploy.profiles_setup"
        ),
    )


if __name__ == "__main__":
    sys.exit(main())
