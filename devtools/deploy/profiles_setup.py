"""Create or update the Customer Profiles object type a stage's events are recorded in, and
its event triggers.

`make profiles-setup STAGE=dev` (`.venv/bin/python -m devtools.deploy.profiles_setup --stage
dev`) reads
the stage's settings from .chalice/config.json (PROFILES_DOMAIN, PROFILES_OBJECT_TYPE,
ALLOWED_USER_ATTRIBUTES, PROFILES_TRIGGER_EVENTS), reads the object type with
GetProfileObjectType and calls PutProfileObjectType only when it is missing or differs; then
one event trigger per PROFILES_TRIGGER_EVENTS name (`pixel-relay-<event>`, firing when an
object of that event type arrives: what an Amazon Connect outbound campaign starts from),
created when missing (CreateEventTrigger), updated when it differs (UpdateEventTrigger).
Running it again changes nothing. It deletes nothing: a trigger on the object type that the
setting no longer names is reported and left in place.

The domain itself is not created here: it belongs to the Amazon Connect instance (the
CloudFormation path can create it, see devtools/deploy/template.py).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.destinations.customer_profiles.object_type import object_type_definition
from chalicelib.destinations.customer_profiles.settings import TRIGGER_PREFIX, Settings
from chalicelib.env import ConfigError
from devtools.deploy.preflight import check_region
from devtools.paths import ROOT
from devtools.process import aws_region
from devtools.queue_spec import stage_environment

# What pixel-relay decides in a definition; the service adds CreatedAt, Tags and the like.
COMPARED = ("Description", "AllowProfileCreation", "Fields", "Keys")
# The same for an event trigger; its limits and segment filter are left to the operator
# (the Connect console sets them too) and never overwritten.
TRIGGER_COMPARED = ("ObjectTypeName", "Description", "EventTriggerConditions")
# The object type's field a trigger's condition reads (object_type_definition's).
EVENT_TYPE_FIELD = "event_type"


class ObjectTypeClient(Protocol):
    """The part of boto3's "customer-profiles" client that setup uses."""

    def get_domain(self, *, DomainName: str) -> Mapping[str, Any]: ...  # noqa: N803

    def get_profile_object_type(
        self,
        *,
        DomainName: str,  # noqa: N803
        ObjectTypeName: str,  # noqa: N803
    ) -> Mapping[str, Any]: ...

    def put_profile_object_type(self, **request: Any) -> Mapping[str, Any]: ...


class EventTriggerClient(Protocol):
    """The part of boto3's "customer-profiles" client that trigger setup uses."""

    def get_event_trigger(
        self,
        *,
        DomainName: str,  # noqa: N803
        EventTriggerName: str,  # noqa: N803
    ) -> Mapping[str, Any]: ...

    def create_event_trigger(self, **request: Any) -> Mapping[str, Any]: ...

    def update_event_trigger(self, **request: Any) -> Mapping[str, Any]: ...

    def list_event_triggers(self, **request: Any) -> Mapping[str, Any]: ...


class SetupError(Exception):
    """A failure the operator must fix; the message says what."""


@dataclass(frozen=True)
class SetupResult:
    action: str  # "created", "updated" or "unchanged"
    changed: tuple[str, ...] = ()


def comparable(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The compared members, normalized: the order of StandardIdentifiers and absent
    defaults (no Target, AllowProfileCreation false) carry no meaning."""
    keys = {
        name: [
            {
                "StandardIdentifiers": sorted(key.get("StandardIdentifiers", [])),
                "FieldNames": list(key.get("FieldNames", [])),
            }
            for key in key_list
        ]
        for name, key_list in definition.get("Keys", {}).items()
    }
    return {
        "Description": definition.get("Description", ""),
        "AllowProfileCreation": bool(definition.get("AllowProfileCreation", False)),
        "Fields": {name: dict(spec) for name, spec in definition.get("Fields", {}).items()},
        "Keys": keys,
    }


def differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[str, ...]:
    now, wanted = comparable(current), comparable(desired)
    return tuple(name for name in COMPARED if now[name] != wanted[name])


def ensure_object_type(
    client: ObjectTypeClient, settings: Settings, dry_run: bool = False
) -> SetupResult:
    """Make the domain's object type match `object_type_definition(settings)`."""
    desired = object_type_definition(settings)
    try:
        client.get_domain(DomainName=settings.domain)
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            raise SetupError(
                f"domain {settings.domain!r} does not exist in this account and region; "
                "create it in the Amazon Connect console (Customer profiles) or set "
                "PROFILES_DOMAIN to an existing one"
            ) from None
        raise SetupError(f"GetDomain failed: {_describe(error)}") from None
    try:
        current = client.get_profile_object_type(
            DomainName=settings.domain, ObjectTypeName=settings.object_type
        )
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise SetupError(f"GetProfileObjectType failed: {_describe(error)}") from None
        result = SetupResult("created", COMPARED)
    else:
        changed = differences(current, desired)
        if not changed:
            return SetupResult("unchanged")
        result = SetupResult("updated", changed)
    if not dry_run:
        try:
            client.put_profile_object_type(**desired)
        except ClientError as error:
            raise SetupError(f"PutProfileObjectType failed: {_describe(error)}") from None
    return result


# Event triggers ----------------------------------------------------------------------------


def event_trigger_name(event_type: str) -> str:
    """`pixel-relay-<event type>` (Settings checked it fits the trigger name's rule)."""
    return f"{TRIGGER_PREFIX}{event_type}"


def event_trigger_definition(settings: Settings, event_type: str) -> dict[str, Any]:
    """The CreateEventTrigger request: fire when an object of the destination's object type
    arrives whose `event_type` field equals `event_type`."""
    fields = object_type_definition(settings).get("Fields", {})
    if EVENT_TYPE_FIELD not in fields:  # the object type would give the condition nothing
        raise SetupError(f"object type {settings.object_type!r} has no {EVENT_TYPE_FIELD} field")
    return {
        "DomainName": settings.domain,
        "EventTriggerName": event_trigger_name(event_type),
        "ObjectTypeName": settings.object_type,
        "Description": (
            f"pixel-relay: a {event_type!r} event from the GTM pixel arrived on a profile "
            "(start an Amazon Connect outbound campaign from this trigger)."
        ),
        "EventTriggerConditions": [
            {
                "EventTriggerDimensions": [
                    {
                        "ObjectAttributes": [
                            {
                                "FieldName": EVENT_TYPE_FIELD,
                                "ComparisonOperator": "EQUAL",
                                "Values": [event_type],
                            }
                        ]
                    }
                ],
                "LogicalOperator": "ANY",
            }
        ],
    }


def trigger_differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[str, ...]:
    return tuple(name for name in TRIGGER_COMPARED if current.get(name) != desired.get(name))


@dataclass(frozen=True)
class TriggerResult:
    name: str
    action: str  # "created", "updated", "unchanged" or "not configured" (left in place)
    changed: tuple[str, ...] = ()


def ensure_event_triggers(
    client: EventTriggerClient, settings: Settings, dry_run: bool = False
) -> list[TriggerResult]:
    """One trigger per PROFILES_TRIGGER_EVENTS name, created or updated to match; the other
    triggers on the object type are reported as "not configured" and never deleted."""
    results: list[TriggerResult] = []
    wanted = {event_trigger_name(event): event for event in settings.trigger_events}
    for name, event in sorted(wanted.items()):
        desired = event_trigger_definition(settings, event)
        try:
            current = client.get_event_trigger(DomainName=settings.domain, EventTriggerName=name)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise SetupError(f"GetEventTrigger {name} failed: {_describe(error)}") from None
            if not dry_run:
                _call(client.create_event_trigger, "CreateEventTrigger", name, desired)
            results.append(TriggerResult(name, "created"))
            continue
        changed = trigger_differences(current, desired)
        if not changed:
            results.append(TriggerResult(name, "unchanged"))
            continue
        if not dry_run:
            _call(client.update_event_trigger, "UpdateEventTrigger", name, desired)
        results.append(TriggerResult(name, "updated", changed))
    for other in _triggers_on(client, settings):
        if other not in wanted:
            results.append(TriggerResult(other, "not configured"))
    return results


def _call(operation: Any, action: str, name: str, request: Mapping[str, Any]) -> None:
    try:
        operation(**request)
    except ClientError as error:
        raise SetupError(f"{action} {name} failed: {_describe(error)}") from None


def _triggers_on(client: EventTriggerClient, settings: Settings) -> list[str]:
    """The names of the domain's triggers on this object type, every page read."""
    names: list[str] = []
    request: dict[str, Any] = {"DomainName": settings.domain, "MaxResults": 100}
    while True:
        try:
            page = client.list_event_triggers(**request)
        except ClientError as error:
            raise SetupError(f"ListEventTriggers failed: {_describe(error)}") from None
        names.extend(
            str(item["EventTriggerName"])
            for item in page.get("Items", [])
            if item.get("ObjectTypeName") == settings.object_type
        )
        if not page.get("NextToken"):
            return sorted(names)
        request["NextToken"] = page["NextToken"]


def trigger_report(result: TriggerResult, dry_run: bool) -> str:
    name = f"event trigger {result.name!r}"
    if result.action == "unchanged":
        return f"{name} is up to date"
    if result.action == "not configured":
        return (
            f"{name} is on this object type but not in PROFILES_TRIGGER_EVENTS: left in place"
            " (delete it in the Amazon Connect console or with DeleteEventTrigger if unwanted)"
        )
    verb = {"created": "create", "updated": "update"}[result.action]
    what = f"would {verb}" if dry_run else result.action
    changed = f" ({', '.join(result.changed)} changed)" if result.changed else ""
    return f"{what} {name}{changed}"


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: ClientError) -> str:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    message = error.response.get("Error", {}).get("Message", "")
    return f"{status} {_code(error)} {message}".strip()


def report(result: SetupResult, settings: Settings, dry_run: bool) -> str:
    name = f"object type {settings.object_type!r} in domain {settings.domain!r}"
    if result.action == "unchanged":
        return f"{name} is up to date; nothing to do"
    verb = {"created": "create", "updated": "update"}[result.action]
    what = f"would {verb}" if dry_run else result.action
    if result.action == "updated":
        return f"{what} {name} ({', '.join(result.changed)} changed)"
    return f"{what} {name}"


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.deploy.profiles_setup", description=__doc__
    )
    parser.add_argument("--stage", required=True, help="a stage in .chalice/config.json")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would change; change nothing"
    )
    parser.add_argument("--show", action="store_true", help="print the definition as JSON")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(stage_environment(args.stage, root))
    except ConfigError as error:
        print(f"stage {args.stage}: {error}", file=sys.stderr)
        return 2
    if args.show:
        print(json.dumps(object_type_definition(settings), indent=2, sort_keys=True))
    region = aws_region()  # AWS_REGION works too, and a profile's region (devtools.process)
    if region:  # without one, boto3 names the problem below
        check_region(args.stage, region, root)
    try:
        client: Any = boto3.client("customer-profiles", config=Config(retries={"mode": "standard"}))
        result = ensure_object_type(client, settings, dry_run=args.dry_run)
        print(report(result, settings, args.dry_run))
        if args.show:
            for event in settings.trigger_events:
                definition = event_trigger_definition(settings, event)
                print(json.dumps(definition, indent=2, sort_keys=True))
        triggers = ensure_event_triggers(client, settings, dry_run=args.dry_run)
    except SetupError as error:
        print(f"stage {args.stage}: {error}", file=sys.stderr)
        return 1
    except BotoCoreError as error:  # no region, no credentials, service unreachable
        print(f"stage {args.stage}: cannot reach Customer Profiles: {error}", file=sys.stderr)
        return 1
    for trigger in triggers:
        print(trigger_report(trigger, args.dry_run))
    if not settings.trigger_events:
        print("no event triggers: PROFILES_TRIGGER_EVENTS is empty")
    return 0


if __name__ == "__main__":
    sys.exit(main())
