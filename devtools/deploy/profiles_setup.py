"""Create or update the Customer Profiles object type a stage's events are recorded in, its
event triggers and the integrations that link each trigger to its campaign.

`make profiles-setup STAGE=dev` (`.venv/bin/python -m devtools.deploy.profiles_setup --stage
dev`) reads the stage's settings from .chalice/config.json (PROFILES_*, ALLOWED_USER_ATTRIBUTES,
SIGNED_USER_ATTRIBUTES) and makes three things match them, each read back first and written
only when missing or different in a field pixel-relay decides (a drifted one is put back):

1. the object type (GetProfileObjectType, PutProfileObjectType);
2. one event trigger per PROFILES_TRIGGER_EVENTS name (`pixel-relay-<event>`: an object of
   that event type that arrived on time), with the stage's limits (GetEventTrigger,
   CreateEventTrigger, UpdateEventTrigger);
3. for each PROFILES_CAMPAIGNS pair, the trigger's action: an integration whose `Uri` is the
   campaign's ARN and whose `EventTriggerNames` is that trigger (GetIntegration,
   PutIntegration), as AWS's "Create an outbound campaign using event triggers" has it.

Running it again changes nothing. It deletes nothing: a trigger the setting no longer names,
or another integration on a trigger, is reported and left in place; a trigger with no
campaign is reported. Campaign ARNs are checked offline (Settings); reading a campaign back
(DescribeCampaign) only adds a note, and failing to read it never fails the setup.

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

from chalicelib.destinations.base import Statement, own_arn
from chalicelib.destinations.customer_profiles.object_type import (
    ON_TIME_FIELD,
    object_type_definition,
)
from chalicelib.destinations.customer_profiles.settings import TRIGGER_PREFIX, Campaign, Settings
from chalicelib.env import ConfigError
from devtools.deploy.preflight import check_region
from devtools.paths import ROOT
from devtools.process import aws_region
from devtools.queue_spec import stage_environment

# What pixel-relay decides in a definition; the service adds CreatedAt, Tags and the like.
COMPARED = (
    "Description",
    "AllowProfileCreation",
    "ExpirationDays",
    "MaxProfileObjectCount",
    "SourceLastUpdatedTimestampFormat",
    "Fields",
    "Keys",
)
# The same for an event trigger (its segment filter is left to the operator) and for an
# integration (its Uri is the campaign it is read by).
TRIGGER_COMPARED = ("ObjectTypeName", "Description", "EventTriggerConditions", "EventTriggerLimits")
INTEGRATION_COMPARED = ("EventTriggerNames",)
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
        "ExpirationDays": definition.get("ExpirationDays"),
        "MaxProfileObjectCount": definition.get("MaxProfileObjectCount"),
        "SourceLastUpdatedTimestampFormat": definition.get("SourceLastUpdatedTimestampFormat"),
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
    arrives whose `event_type` field equals `event_type` and whose `on_time` field is
    "true" (delivered within PROFILES_TRIGGER_EXPIRATION_SECONDS of happening), both
    dimensions required (`LogicalOperator` ALL); at most PROFILES_TRIGGER_MAX_STARTS starts
    per profile per PROFILES_TRIGGER_PERIOD, and none past the expiration
    (`EventExpiration`, in milliseconds, however the service measures the latency)."""
    fields = object_type_definition(settings).get("Fields", {})
    for needed in (EVENT_TYPE_FIELD, ON_TIME_FIELD):
        if needed not in fields:  # the object type would give the condition nothing
            raise SetupError(f"object type {settings.object_type!r} has no {needed} field")
    limits = settings.trigger_limits
    return {
        "DomainName": settings.domain,
        "EventTriggerName": event_trigger_name(event_type),
        "ObjectTypeName": settings.object_type,
        "Description": (
            f"pixel-relay: a {event_type!r} event from the GTM pixel arrived on a profile "
            "on time (start an Amazon Connect outbound campaign from this trigger)."
        ),
        "EventTriggerConditions": [
            {
                "EventTriggerDimensions": [
                    _dimension(EVENT_TYPE_FIELD, event_type),
                    _dimension(ON_TIME_FIELD, "true"),
                ],
                "LogicalOperator": "ALL",
            }
        ],
        "EventTriggerLimits": {
            "EventExpiration": limits.expiration_seconds * 1000,
            "Periods": [
                {
                    "Unit": limits.period_unit,
                    "Value": limits.period_value,
                    "MaxInvocationsPerProfile": limits.max_starts,
                    "Unlimited": False,
                }
            ],
        },
    }


def _dimension(field: str, value: str) -> dict[str, Any]:
    return {
        "ObjectAttributes": [{"FieldName": field, "ComparisonOperator": "EQUAL", "Values": [value]}]
    }


def _comparable_trigger(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The compared members, with a period's absent `Unlimited` read as false."""
    limits = dict(definition.get("EventTriggerLimits") or {})
    if "Periods" in limits:
        limits["Periods"] = [
            {**period, "Unlimited": bool(period.get("Unlimited", False))}
            for period in limits["Periods"]
        ]
    return {
        "ObjectTypeName": definition.get("ObjectTypeName"),
        "Description": definition.get("Description"),
        "EventTriggerConditions": definition.get("EventTriggerConditions"),
        "EventTriggerLimits": limits,
    }


def trigger_differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[str, ...]:
    now, wanted = _comparable_trigger(current), _comparable_trigger(desired)
    return tuple(name for name in TRIGGER_COMPARED if now[name] != wanted[name])


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


# Integrations: each trigger's campaign -------------------------------------------------------


class IntegrationClient(Protocol):
    """The part of boto3's "customer-profiles" client that integration setup uses."""

    def get_integration(self, *, DomainName: str, Uri: str) -> Mapping[str, Any]: ...  # noqa: N803

    def put_integration(self, **request: Any) -> Mapping[str, Any]: ...

    def list_integrations(self, **request: Any) -> Mapping[str, Any]: ...


def integration_definition(settings: Settings, campaign: Campaign) -> dict[str, Any]:
    """The PutIntegration request that makes `campaign` the action of its event type's
    trigger: the campaign's ARN as `Uri`, the trigger as the one `EventTriggerNames`."""
    return {
        "DomainName": settings.domain,
        "Uri": campaign.arn,
        "EventTriggerNames": [event_trigger_name(campaign.event_type)],
    }


@dataclass(frozen=True)
class IntegrationResult:
    trigger: str
    campaign: str | None  # the integration's Uri; None: the trigger has none
    action: str  # "created", "updated", "unchanged", "no campaign" or "not configured"
    changed: tuple[str, ...] = ()


def ensure_integrations(
    client: IntegrationClient, settings: Settings, dry_run: bool = False
) -> list[IntegrationResult]:
    """One integration per PROFILES_CAMPAIGNS pair, created or put back to match; a trigger
    of PROFILES_TRIGGER_EVENTS without a campaign is reported, and so is an integration
    that links one of the stage's triggers to a campaign the setting does not name (left
    in place: it may be the console's own)."""
    results: list[IntegrationResult] = []
    for campaign in settings.campaigns:
        desired = integration_definition(settings, campaign)
        trigger = event_trigger_name(campaign.event_type)
        try:
            current = client.get_integration(DomainName=settings.domain, Uri=campaign.arn)
        except ClientError as error:
            if _code(error) != "ResourceNotFoundException":
                raise SetupError(
                    f"GetIntegration {campaign.arn} failed: {_describe(error)}"
                ) from None
            if not dry_run:
                _call(client.put_integration, "PutIntegration", campaign.arn, desired)
            results.append(IntegrationResult(trigger, campaign.arn, "created"))
            continue
        changed = tuple(
            name for name in INTEGRATION_COMPARED if list(current.get(name) or []) != desired[name]
        )
        if not changed:
            results.append(IntegrationResult(trigger, campaign.arn, "unchanged"))
            continue
        if not dry_run:
            _call(client.put_integration, "PutIntegration", campaign.arn, desired)
        results.append(IntegrationResult(trigger, campaign.arn, "updated", changed))
    configured = {campaign.arn for campaign in settings.campaigns}
    ours = {event_trigger_name(event) for event in settings.trigger_events}
    for item in _integrations(client, settings):
        names = set(item.get("EventTriggerNames") or [])
        if item.get("Uri") not in configured and names & ours:
            for trigger in sorted(names & ours):
                results.append(IntegrationResult(trigger, str(item["Uri"]), "not configured"))
    linked = {event_trigger_name(campaign.event_type) for campaign in settings.campaigns}
    for trigger in sorted(ours - linked):
        results.append(IntegrationResult(trigger, None, "no campaign"))
    return results


def _integrations(client: IntegrationClient, settings: Settings) -> list[Mapping[str, Any]]:
    """Every integration of the domain, every page read."""
    found: list[Mapping[str, Any]] = []
    request: dict[str, Any] = {"DomainName": settings.domain, "MaxResults": 100}
    while True:
        try:
            page = client.list_integrations(**request)
        except ClientError as error:
            raise SetupError(f"ListIntegrations failed: {_describe(error)}") from None
        found.extend(page.get("Items", []))
        if not page.get("NextToken"):
            return found
        request["NextToken"] = page["NextToken"]


def integration_report(result: IntegrationResult, dry_run: bool) -> str:
    trigger = f"event trigger {result.trigger!r}"
    if result.action == "no campaign":
        return (
            f"{trigger} has no campaign: it fires, and nothing starts (add event=campaign-ARN"
            " to PROFILES_CAMPAIGNS, or link one in the Amazon Connect admin website)"
        )
    if result.action == "not configured":
        return (
            f"{trigger} also starts {result.campaign}, which PROFILES_CAMPAIGNS does not name:"
            " left in place"
        )
    name = f"the integration starting {result.campaign} from {trigger}"
    if result.action == "unchanged":
        return f"{name} is up to date"
    verb = {"created": "create", "updated": "update"}[result.action]
    what = f"would {verb}" if dry_run else result.action
    changed = f" ({', '.join(result.changed)} changed)" if result.changed else ""
    return f"{what} {name}{changed}"


def campaign_notes(client: Any, settings: Settings) -> list[str]:
    """What reading each campaign back says (DescribeCampaign), as notes: the campaign's
    source should be this domain's event trigger. Reading it back is optional: a campaign
    that cannot be read (no permission, another account, no such campaign yet) is a note,
    never a failure."""
    notes: list[str] = []
    for campaign in settings.campaigns:
        try:
            answer = client.describe_campaign(id=campaign.campaign_id)
        except (ClientError, BotoCoreError) as error:
            reason = _describe(error) if isinstance(error, ClientError) else type(error).__name__
            notes.append(f"campaign {campaign.arn} not read back ({reason}); the link stands")
            continue
        source = answer.get("campaign", {}).get("source", {})
        domain_arn = str(source.get("eventTrigger", {}).get("customerProfilesDomainArn", ""))
        if not domain_arn.endswith(f":domains/{settings.domain}"):
            notes.append(
                f"campaign {campaign.arn} starts from {domain_arn or 'a segment'}, not from"
                f" domain {settings.domain!r}'s event triggers: create it with an event trigger"
                " source on this domain (a campaign's source cannot change)"
            )
        else:
            name = answer.get("campaign", {}).get("name", campaign.campaign_id)
            notes.append(f"campaign {name!r} starts from this domain's event triggers")
    return notes


# What the operator who runs it needs --------------------------------------------------------


def setup_statements(settings: Settings) -> list[Statement]:
    """The IAM statements for running this setup on the stage, each action on the resource
    types the Service Authorization Reference lists for it (`--policy` prints them):
    `domains` for GetDomain and the two List calls, `object-types`, `event-triggers` and
    `integrations` for the rest, and `campaign` (connect-campaigns) for the optional read
    back. No tags are written, so no profile:TagResource."""
    domain = f"domains/{settings.domain}"
    statements: list[Statement] = [
        {
            "Sid": "ReadTheDomain",
            "Effect": "Allow",
            "Action": [
                "profile:GetDomain",
                "profile:ListEventTriggers",
                "profile:ListIntegrations",
            ],
            "Resource": [own_arn("profile", domain)],
        },
        {
            "Sid": "DefineTheObjectType",
            "Effect": "Allow",
            "Action": ["profile:GetProfileObjectType", "profile:PutProfileObjectType"],
            "Resource": [own_arn("profile", f"{domain}/object-types/{settings.object_type}")],
        },
    ]
    if settings.trigger_events:
        statements.append(
            {
                "Sid": "DefineTheTriggers",
                "Effect": "Allow",
                "Action": [
                    "profile:CreateEventTrigger",
                    "profile:GetEventTrigger",
                    "profile:UpdateEventTrigger",
                ],
                "Resource": [own_arn("profile", f"{domain}/event-triggers/{TRIGGER_PREFIX}*")],
            }
        )
    if settings.campaigns:
        statements.append(
            {
                "Sid": "LinkTheCampaigns",
                "Effect": "Allow",
                "Action": ["profile:GetIntegration", "profile:PutIntegration"],
                "Resource": [own_arn("profile", f"{domain}/integrations/*")],
            }
        )
        statements.append(
            {
                "Sid": "ReadTheCampaignsBack",
                "Effect": "Allow",
                "Action": ["connect-campaigns:DescribeCampaign"],
                "Resource": [campaign.arn for campaign in settings.campaigns],
            }
        )
    return statements


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
    parser.add_argument(
        "--policy",
        action="store_true",
        help="print the IAM policy that running the setup needs, and change nothing",
    )
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(stage_environment(args.stage, root))
    except ConfigError as error:
        print(f"stage {args.stage}: {error}", file=sys.stderr)
        return 2
    if args.policy:
        policy = {"Version": "2012-10-17", "Statement": setup_statements(settings)}
        print(json.dumps(policy, indent=2))
        return 0
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
        if args.show:
            for campaign in settings.campaigns:
                definition = integration_definition(settings, campaign)
                print(json.dumps(definition, indent=2, sort_keys=True))
        integrations = ensure_integrations(client, settings, dry_run=args.dry_run)
    except SetupError as error:
        print(f"stage {args.stage}: {error}", file=sys.stderr)
        return 1
    except BotoCoreError as error:  # no region, no credentials, service unreachable
        print(f"stage {args.stage}: cannot reach Customer Profiles: {error}", file=sys.stderr)
        return 1
    for trigger in triggers:
        print(trigger_report(trigger, args.dry_run))
    for integration in integrations:
        print(integration_report(integration, args.dry_run))
    if not settings.trigger_events:
        print("no event triggers: PROFILES_TRIGGER_EVENTS is empty")
    if settings.campaigns:
        campaigns: Any = boto3.client(
            "connectcampaignsv2",
            region_name=settings.campaigns[0].region,
            config=Config(retries={"mode": "standard"}),
        )
        for note in campaign_notes(campaigns, settings):
            print(note)
    return 0


if __name__ == "__main__":
    sys.exit(main())
