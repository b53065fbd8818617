"""The stored object: what one event becomes in Customer Profiles, and the object type
(`object_type_definition`) that `make profiles-setup` and the CloudFormation path define, which
ties the object to its profiles, copies the allowed user attributes onto the profile and
names the event's time as the object's source timestamp."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any, Final

from chalicelib.destinations.customer_profiles.settings import (
    ENDPOINT_ID_ATTRIBUTE,
    USER_ID_ATTRIBUTE,
    Settings,
)
from chalicelib.events import Event

# From botocore's model (customer-profiles 2020-08-15): the `Object` (stringifiedJson) and
# the profile `Attributes` values (string1To255).
MAX_OBJECT_CHARS: Final = 256_000
MAX_PROFILE_ATTRIBUTE_CHARS: Final = 255
VALUE_SEPARATOR: Final = ", "
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
