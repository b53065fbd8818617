"""The stored object: what one event becomes in Customer Profiles, and the object type
(`object_type_definition`) that `make profiles-setup` and the CloudFormation path define, which
ties the object to one profile, copies the allowed and signed user attributes onto it, keeps
a bounded number of objects per profile and marks the events a campaign may start from.

What it relies on of the service, and what it does not (docs/destinations/customer-profiles.md,
"What AWS documents and what it does not"):

- one PROFILE key value per object: a hit with a trusted user id is keyed by its user id
  only, an anonymous hit by its endpoint id only, so an object can never name two profiles
  (AWS does not say what happens when two keys find two profiles);
- a bounded number of objects per profile: the object's UNIQUE key is one of
  PROFILES_EVENTS_KEPT slots of its profile, so a new event replaces an older one and the
  object type never reaches its MaxProfileObjectCount (AWS does not say what happens at the
  limit);
- no reliance on `SourceLastUpdatedTimestampFormat` for order (AWS describes only the
  format): the delivery sends each profile attribute of a batch with its newest event only.
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

from chalicelib.destinations.customer_profiles.settings import (
    DEFAULT_EVENTS_KEPT,
    DEFAULT_TRIGGER_EXPIRATION_SECONDS,
    ENDPOINT_ID_ATTRIBUTE,
    USER_ID_ATTRIBUTE,
    Settings,
)
from chalicelib.events import Event

# From botocore's model (customer-profiles 2020-08-15): the `Object` (stringifiedJson) and
# the profile `Attributes` values (string1To255); "A single profile object can be up to
# 250 KB" (the admin guide), counted here as 256,000 bytes of UTF-8.
MAX_OBJECT_CHARS: Final = 256_000
MAX_OBJECT_BYTES: Final = 250 * 1024
MAX_PROFILE_ATTRIBUTE_CHARS: Final = 255
VALUE_SEPARATOR: Final = ", "
# The object type's keys. Each object carries exactly one PROFILE key value: the user id of
# a hit that has a trusted one (every device of one user meets in the profile it names),
# else the endpoint id (`profile_endpoint_id`, absent when there is a user id).
PROFILE_KEY: Final = "pixelRelayEndpointId"
USER_PROFILE_KEY: Final = "pixelRelayUserId"
UNIQUE_KEY: Final = "pixelRelayObjectId"
PROFILE_ENDPOINT_FIELD: Final = "profile_endpoint_id"
# The field a trigger's condition reads besides the event type: "true" when the event was
# delivered within PROFILES_TRIGGER_EXPIRATION_SECONDS of happening.
ON_TIME_FIELD: Final = "on_time"
# The field the object type names as the object's source timestamp, and its format (Java's
# DateTimeFormatter pattern for "2026-11-30T10:00:00.000Z"). Its value is `ordered_at`:
# the event's time, never later than the pixel received it.
SOURCE_TIMESTAMP_FIELD: Final = "sourceLastUpdatedTimestamp"
SOURCE_TIMESTAMP_FORMAT: Final = "yyyy-MM-dd'T'HH:mm:ss.SSSX"

# Fixed forever: a new namespace would give every resent event a second object.
OBJECT_ID_NAMESPACE: Final = uuid.UUID("6f1c2a52-3f0e-4d55-9a41-8d7c1e0b5a90")


@dataclass(frozen=True)
class ObjectRules:
    """What an object depends on besides its event: the slots a profile keeps
    (PROFILES_EVENTS_KEPT) and how late a campaign may still start
    (PROFILES_TRIGGER_EXPIRATION_SECONDS)."""

    events_kept: int = DEFAULT_EVENTS_KEPT
    trigger_expiration_seconds: int = DEFAULT_TRIGGER_EXPIRATION_SECONDS

    @classmethod
    def of(cls, settings: Settings) -> ObjectRules:
        return cls(settings.events_kept, settings.trigger_limits.expiration_seconds)


DEFAULT_RULES: Final = ObjectRules()


def profile_identity(event: Event) -> tuple[str, str]:
    """The one profile key value the object carries: ("user", id) for a hit with a trusted
    user id, else ("endpoint", id)."""
    if event.profile.user_id:
        return "user", event.profile.user_id
    return "endpoint", event.endpoint_id


def object_slot(event: Event, events_kept: int = DEFAULT_EVENTS_KEPT) -> int:
    """The event's slot among its profile's `events_kept`: the same event always takes the
    same slot (a resend replaces its first copy), two events share one now and then (the
    newer replaces the older's object; both were recorded, their triggers fired)."""
    digest = hashlib.sha256(event.event_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") % events_kept


def object_id(event: Event, events_kept: int = DEFAULT_EVENTS_KEPT) -> str:
    """The object's unique key: its profile's key value and its slot there."""
    kind, value = profile_identity(event)
    slot = object_slot(event, events_kept)
    return str(uuid.uuid5(OBJECT_ID_NAMESPACE, f"{kind} {value} {slot}"))


def ordered_at(event: Event) -> str:
    """The time Customer Profiles orders the event by: its time, never later than the pixel
    received it (the pixel corrects a client's clock first, then clamps; a message queued
    by an older pixel is clamped here)."""
    return min(event.timestamp, event.received_at)  # one canonical UTC form: sorts as text


def on_time(event: Event, now: datetime, expiration_seconds: int) -> bool:
    """Whether a campaign may still start from the event: delivered within
    `expiration_seconds` of the time it is ordered by."""
    happened = datetime.fromisoformat(ordered_at(event).replace("Z", "+00:00"))
    return (now - happened).total_seconds() <= expiration_seconds


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


def profile_attributes(event: Event) -> dict[str, str]:
    """What the event writes onto its profile: each user attribute as the one string the
    profile holds, and the endpoint id the profile was last seen on."""
    attributes = {
        name: profile_value(values) for name, values in event.profile.user_attributes.items()
    }
    written = {k: v for k, v in attributes.items() if v is not None}
    written[ENDPOINT_ID_ATTRIBUTE] = event.endpoint_id
    return written


def profile_object(
    event: Event,
    rules: ObjectRules = DEFAULT_RULES,
    now: datetime | None = None,
    carried: Collection[str] | None = None,
) -> dict[str, Any]:
    """The stored object: Event.to_record() without its nulls, plus `object_id`, the profile
    key value, `ordered_at`, `on_time` and `profile_attributes` (only those of `carried`
    when given: a newer event of the same batch carries the others)."""
    record = {name: value for name, value in event.to_record().items() if value is not None}
    record["object_id"] = object_id(event, rules.events_kept)
    kind, value = profile_identity(event)
    if kind == "endpoint":
        record[PROFILE_ENDPOINT_FIELD] = value
    record["ordered_at"] = ordered_at(event)
    delivered = now or datetime.now(UTC)
    record[ON_TIME_FIELD] = (
        "true" if on_time(event, delivered, rules.trigger_expiration_seconds) else "false"
    )
    attributes = profile_attributes(event)
    if carried is not None:
        attributes = {k: v for k, v in attributes.items() if k in carried}
    record["profile_attributes"] = attributes
    return record


def object_type_definition(settings: Settings) -> dict[str, Any]:
    """The PutProfileObjectType request for the destination's object type.

    Every member pixel-relay decides is explicit (ContentType, AllowProfileCreation,
    ExpirationDays, MaxProfileObjectCount, SourceLastUpdatedTimestampFormat), so that a
    definition read back with GetProfileObjectType compares equal to this one. Fields
    without a Target are there for keys, trigger conditions, calculated attributes and
    segments.
    """
    fields: dict[str, dict[str, str]] = {
        "object_id": _field("object_id"),
        "event_id": _field("event_id"),
        "event_type": _field("event_type"),
        "timestamp": _field("timestamp"),
        "endpoint_id": _field("endpoint_id"),
        PROFILE_ENDPOINT_FIELD: _field(PROFILE_ENDPOINT_FIELD),
        "user_id": _field("user_id", USER_ID_ATTRIBUTE),
        ON_TIME_FIELD: _field(ON_TIME_FIELD),
        SOURCE_TIMESTAMP_FIELD: _field("ordered_at"),
        f"profile.{ENDPOINT_ID_ATTRIBUTE}": _field(
            f"profile_attributes.{ENDPOINT_ID_ATTRIBUTE}", ENDPOINT_ID_ATTRIBUTE
        ),
    }
    for name in sorted(settings.user_attributes):
        fields[f"user.{name}"] = _field(f"profile_attributes.{name}", name)
    return {
        "DomainName": settings.domain,
        "ObjectTypeName": settings.object_type,
        "Description": (
            "pixel-relay: GTM pixel events on the profile of their user id (a trusted one) or "
            "else their endpoint id, the newest kept in a fixed number of objects per profile; "
            "allowed and signed user attributes are copied onto the profile."
        ),
        "AllowProfileCreation": True,
        "ExpirationDays": settings.object_expiration_days,
        "MaxProfileObjectCount": settings.max_objects,
        "SourceLastUpdatedTimestampFormat": SOURCE_TIMESTAMP_FORMAT,
        "Fields": fields,
        "Keys": {
            PROFILE_KEY: [
                {"StandardIdentifiers": ["PROFILE"], "FieldNames": [PROFILE_ENDPOINT_FIELD]}
            ],
            USER_PROFILE_KEY: [{"StandardIdentifiers": ["PROFILE"], "FieldNames": ["user_id"]}],
            UNIQUE_KEY: [{"StandardIdentifiers": ["UNIQUE"], "FieldNames": ["object_id"]}],
        },
    }


def _field(source: str, attribute: str | None = None) -> dict[str, str]:
    definition = {"Source": f"_source.{source}", "ContentType": "STRING"}
    if attribute is not None:
        definition["Target"] = f"_profile.Attributes.{attribute}"
    return definition
