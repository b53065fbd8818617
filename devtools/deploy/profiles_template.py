"""What Customer Profiles adds to a stage's CloudFormation: the object type, the event
triggers and, for each PROFILES_CAMPAIGNS pair, the integration linking the trigger to its
campaign (`AWS::CustomerProfiles::Integration`, `Uri` the campaign's ARN,
`EventTriggerNames` the trigger), all from the definitions `make profiles-setup` sends; and
the domain itself unless the `CreateProfilesDomain` parameter is false (a domain your Amazon
Connect instance already has). The customer-profiles plug-in names `resources` as its
deploy-time hook (`devtools.deploy.template` merges it). Development tooling only.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Any, Final

from chalicelib.destinations.customer_profiles import CustomerProfiles
from chalicelib.destinations.customer_profiles.object_type import object_type_definition
from devtools.deploy.profiles_setup import event_trigger_definition, integration_definition


def _ref(name: str) -> dict[str, str]:
    return {"Ref": name}


# A new domain keeps profiles and objects this many days (the API's own default, 366).
PROFILES_EXPIRATION_DAYS: Final = 366
PROFILES_PARAMETERS: Final = {
    "CreateProfilesDomain": {
        "Type": "String",
        "AllowedValues": ["true", "false"],
        "Default": "true",
        "Description": "Create the Customer Profiles domain PROFILES_DOMAIN names (kept when the"
        " stack is deleted). false: it exists already, e.g. your Amazon Connect instance's.",
    }
}
PROFILES_CONDITIONS: Final = {
    "CreatesProfilesDomain": {"Fn::Equals": [_ref("CreateProfilesDomain"), "true"]}
}
# PutProfileObjectType members and their CloudFormation properties (the rest are the same).
_OBJECT_TYPE_AS_PROPERTIES: Final = frozenset(
    {
        "Description",
        "AllowProfileCreation",
        "ExpirationDays",
        "EncryptionKey",
        "SourceLastUpdatedTimestampFormat",
        "TemplateId",
        "MaxProfileObjectCount",
        "SourcePriority",
    }
)


def object_type_properties(definition: dict[str, Any], domain: Any) -> dict[str, Any]:
    """A PutProfileObjectType request as AWS::CustomerProfiles::ObjectType properties:
    Fields and Keys become lists of {Name, ...}; a member CloudFormation has no property
    for is an error here rather than silently dropped."""
    converted = {"DomainName", "ObjectTypeName", "Fields", "Keys"}
    unknown = set(definition) - _OBJECT_TYPE_AS_PROPERTIES - converted
    if unknown:
        raise ValueError(f"no CloudFormation property for object type member(s) {sorted(unknown)}")
    properties: dict[str, Any] = {
        "DomainName": domain,
        "ObjectTypeName": definition["ObjectTypeName"],
    }
    properties.update({k: v for k, v in definition.items() if k in _OBJECT_TYPE_AS_PROPERTIES})
    properties["Fields"] = [
        {"Name": name, "ObjectTypeField": field}
        for name, field in definition.get("Fields", {}).items()
    ]
    properties["Keys"] = [
        {"Name": name, "ObjectTypeKeyList": keys}
        for name, keys in definition.get("Keys", {}).items()
    ]
    return properties


def trigger_logical_id(event: str) -> str:
    """Alphanumeric, stable for the event, distinct for `a_b` and `a-b`."""
    digest = hashlib.sha256(event.encode()).hexdigest()[:8]
    return f"ProfilesTrigger{re.sub(r'[^A-Za-z0-9]', '', event)[:40]}{digest}"


def integration_logical_id(event: str) -> str:
    """The integration of `event`'s trigger: named after the trigger's logical id."""
    return trigger_logical_id(event).replace("ProfilesTrigger", "ProfilesCampaign", 1)


def resources(environment: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The domain (optional), the object type and the event triggers, from the same
    definitions `make profiles-setup` sends, and the parameter that decides the domain."""
    settings = CustomerProfiles.parse(environment)
    domain = {"Fn::If": ["CreatesProfilesDomain", _ref("ProfilesDomain"), settings.domain]}
    resources: dict[str, Any] = {
        "ProfilesDomain": {
            "Type": "AWS::CustomerProfiles::Domain",
            "Condition": "CreatesProfilesDomain",
            # It holds the profiles: kept when the stack goes, like data.
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": {
                "DomainName": settings.domain,
                "DefaultExpirationDays": PROFILES_EXPIRATION_DAYS,
            },
        },
        "ProfilesObjectType": {
            "Type": "AWS::CustomerProfiles::ObjectType",
            "DeletionPolicy": "Retain",
            "UpdateReplacePolicy": "Retain",
            "Properties": object_type_properties(object_type_definition(settings), domain),
        },
    }
    for event in settings.trigger_events:
        request = event_trigger_definition(settings, event)
        properties = {name: value for name, value in request.items() if name != "DomainName"}
        resources[trigger_logical_id(event)] = {
            "Type": "AWS::CustomerProfiles::EventTrigger",
            "DependsOn": "ProfilesObjectType",
            "Properties": {"DomainName": domain, **properties},
        }
    for campaign in settings.campaigns:
        request = integration_definition(settings, campaign)
        properties = {name: value for name, value in request.items() if name != "DomainName"}
        resources[integration_logical_id(campaign.event_type)] = {
            "Type": "AWS::CustomerProfiles::Integration",
            # The trigger it names must exist first (and goes after it, when deleted).
            "DependsOn": trigger_logical_id(campaign.event_type),
            "Properties": {"DomainName": domain, **properties},
        }
    return {
        "Parameters": PROFILES_PARAMETERS,
        "Conditions": PROFILES_CONDITIONS,
        "Resources": resources,
    }
