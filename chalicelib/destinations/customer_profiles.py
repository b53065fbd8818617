"""Amazon Connect Customer Profiles: each event recorded as one profile object.

Customer Profiles has no batch API, so every event is one `PutProfileObject` call, in an
object type that `devtools.deploy.profiles_setup` defines from `object_type_definition`. That object
type ties the object to the profile of its endpoint id and copies the allowed user
attributes onto that profile, so one accepted call records the event and its profile update
together. A unique key derived from (endpoint id, event id) makes a resend overwrite its
first copy instead of adding a second one. docs/destinations/customer-profiles.md has the
keys, the fields and the object.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from chalicelib import limits, telemetry
from chalicelib.destinations.base import (
    DestinationSpec,
    Outcome,
    Statement,
    TimeLeft,
    Verdict,
    build_refusal,
    client_error_outcome,
    own_arn,
    service_client,
    unexpected_failure,
)
from chalicelib.env import ConfigError, Reader, call_budget_ms, model_rule
from chalicelib.events import Event

NAME: Final = "customer-profiles"
ACTION: Final = "PutProfileObject"

# The `Object` (stringifiedJson) and the profile `Attributes` values (string1To255), from
# botocore's model (customer-profiles 2020-08-15).
MAX_OBJECT_CHARS: Final = 256_000
MAX_PROFILE_ATTRIBUTE_CHARS: Final = 255

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
PROFILE_KEY: Final = "pixelRelayEndpointId"
UNIQUE_KEY: Final = "pixelRelayObjectId"

# Fixed forever: object ids are uuid5(namespace, "<endpoint id> <event id>"), and a new
# namespace would give every resent event a second object.
OBJECT_ID_NAMESPACE: Final = uuid.UUID("6f1c2a52-3f0e-4d55-9a41-8d7c1e0b5a90")

# Failures that every further call in the batch would meet too (a missing domain or object
# type, a missing permission, throttling, an unreachable service): the rest is not sent.
_BATCH_WIDE_STATUSES: Final = frozenset({403, 404, 429})
# A problem with this object that no retry can fix.
_REJECTED_STATUSES: Final = frozenset({400, 413})


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

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        reader = Reader(environ)
        return cls(
            domain=reader.modelled(
                "PROFILES_DOMAIN",
                model_rule("customer-profiles", "PutProfileObject", "DomainName"),
            ),
            object_type=_object_type(reader),
            timeout_seconds=reader.delivery_timeout(),
            user_attributes=mappable_attributes(reader.attribute_names("ALLOWED_USER_ATTRIBUTES")),
            trigger_events=trigger_events(reader.names("PROFILES_TRIGGER_EVENTS")),
        )


def _object_type(reader: Reader) -> str:
    name = reader.modelled(
        "PROFILES_OBJECT_TYPE",
        model_rule("customer-profiles", "PutProfileObject", "ObjectTypeName"),
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

    def put_profile_object(
        self,
        *,
        DomainName: str,  # noqa: N803 (boto3's parameter names)
        ObjectTypeName: str,  # noqa: N803
        Object: str,  # noqa: N803
    ) -> Mapping[str, Any]: ...


def _client(settings: Settings) -> ProfilesClient:
    client: ProfilesClient = service_client("customer-profiles", settings.timeout_seconds)
    return client


def _destination(client: ProfilesClient, settings: Settings) -> CustomerProfilesDestination:
    return CustomerProfilesDestination(
        client, settings.domain, settings.object_type, call_budget_ms(settings.timeout_seconds)
    )


def create(settings: Settings) -> CustomerProfilesDestination:
    return _destination(_client(settings), settings)


def iam_statements(settings: Settings) -> list[Statement]:
    """PutProfileObject in the one domain, for the one object type."""
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

    Fields without a Target are there for keys, calculated attributes and segments;
    ContentType and AllowProfileCreation are explicit so that a definition read back with
    GetProfileObjectType compares equal to this one.
    """
    fields: dict[str, dict[str, str]] = {
        "object_id": _field("object_id"),
        "event_id": _field("event_id"),
        "event_type": _field("event_type"),
        "timestamp": _field("timestamp"),
        "endpoint_id": _field("endpoint_id", ENDPOINT_ID_ATTRIBUTE),
        "user_id": _field("user_id", USER_ID_ATTRIBUTE),
    }
    for name in sorted(settings.user_attributes):
        fields[f"user.{name}"] = _field(f"profile_attributes.{name}", name)
    return {
        "DomainName": settings.domain,
        "ObjectTypeName": settings.object_type,
        "Description": (
            "pixel-relay: one object per GTM pixel event, on the profile of its endpoint id; "
            "allowed user attributes are copied onto the profile."
        ),
        "AllowProfileCreation": True,
        "Fields": fields,
        "Keys": {
            PROFILE_KEY: [{"StandardIdentifiers": ["PROFILE"], "FieldNames": ["endpoint_id"]}],
            UNIQUE_KEY: [{"StandardIdentifiers": ["UNIQUE"], "FieldNames": ["object_id"]}],
        },
    }


def _field(source: str, attribute: str | None = None) -> dict[str, str]:
    field = {"Source": f"_source.{source}", "ContentType": "STRING"}
    if attribute is not None:
        field["Target"] = f"_profile.Attributes.{attribute}"
    return field


# The destination -------------------------------------------------------------------------


class CustomerProfilesDestination:
    """Records events in one Customer Profiles domain, one PutProfileObject call each."""

    name = NAME

    def __init__(
        self, client: ProfilesClient, domain: str, object_type: str, call_budget_ms: int = 0
    ) -> None:
        """`call_budget_ms`: the longest one call can take, retries included; no call is
        started with less Lambda time left than that."""
        self._client = client
        self._domain = domain
        self._object_type = object_type
        self._call_budget_ms = call_budget_ms

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        stopped: Outcome | None = None
        for event in events:
            if stopped is None and time_left is not None and time_left() < self._call_budget_ms:
                stopped = Outcome(Verdict.RETRY, "out of time")
            if stopped is not None:
                outcomes.append(_with_profile(stopped, event))
                continue
            outcome, batch_wide = self._put(event)
            if batch_wide:
                stopped = Outcome(Verdict.RETRY, f"not sent after {outcome.reason}")
            outcomes.append(_with_profile(outcome, event))
        return outcomes

    def _put(self, event: Event) -> tuple[Outcome, bool]:
        """One event's outcome, and whether the failure concerns every call after it."""
        try:
            body = json.dumps(profile_object(event), separators=(",", ":"), ensure_ascii=False)
        except Exception as error:  # this event's alone, never the batch's
            return Outcome(Verdict.REJECTED, build_refusal(NAME, "object", error)), False
        if len(body) > MAX_OBJECT_CHARS:
            reason = f"object is {len(body)} characters; {ACTION} accepts {MAX_OBJECT_CHARS}"
            return Outcome(Verdict.REJECTED, reason), False
        telemetry.count("PutProfileObjectCalls")
        try:
            self._client.put_profile_object(
                DomainName=self._domain, ObjectTypeName=self._object_type, Object=body
            )
        except ClientError as error:
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status in _REJECTED_STATUSES:
                code = error.response.get("Error", {}).get("Code", "")
                message = error.response.get("Error", {}).get("Message", "")
                reason = f"{ACTION} refused: {status} {code} {message}".strip()
                return Outcome(Verdict.REJECTED, reason), False
            # Other 4xx included (a missing domain, object type or permission): retried, so
            # after maxReceiveCount the redrive policy parks the message where an operator
            # finds it, rather than losing it here.
            return client_error_outcome(error, ACTION), status in _BATCH_WIDE_STATUSES
        except ParamValidationError as error:
            # botocore refused this object before sending: no retry can fix it.
            return Outcome(Verdict.REJECTED, build_refusal(NAME, "request", error)), False
        except BotoCoreError as error:
            # Connection failures and timeouts, after the client's own retries.
            return Outcome(Verdict.RETRY, f"{ACTION} failed: {type(error).__name__}"), True
        except Exception as error:  # this call's failure, not the batch's
            return unexpected_failure(NAME, ACTION, error), False
        return Outcome(Verdict.DELIVERED), False


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
