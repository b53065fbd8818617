"""Customer Profiles' settings: the domain and object type events are written to, the user
attributes mapped onto profiles, the event triggers and the write threads."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Final

from chalicelib import limits
from chalicelib.destinations.base import Setting
from chalicelib.env import ConfigError, Reader

NAME: Final = "customer-profiles"
ACTION: Final = "BatchPutProfileObject"

# The pool that writes one batch's calls (PROFILES_WRITE_THREADS): botocore keeps 10
# connections per client, so more threads would only wait for a connection.
DEFAULT_WRITE_THREADS: Final = 4
MAX_WRITE_THREADS: Final = 10

# An allowed user attribute becomes the JSON accessor `_source.profile_attributes.<name>`
# and the target `_profile.Attributes.<name>`: a "." would read as nesting, and nothing
# documents other punctuation in accessors, so only these names are mapped.
_MAPPABLE_ATTRIBUTE: Final = re.compile(r"[A-Za-z0-9_]+")
# An event trigger is named TRIGGER_PREFIX + the event type; its name is 1-64 of
# [a-zA-Z0-9_-] (botocore's model), and an event type is at most 50 characters.
TRIGGER_PREFIX: Final = "pixel-relay-"
MAX_TRIGGER_EVENT_CHARS: Final = limits.EVENT_TYPE_LENGTH
_TRIGGER_EVENT: Final = re.compile(rf"[A-Za-z0-9_-]{{1,{MAX_TRIGGER_EVENT_CHARS}}}")

# Profile attributes pixel-relay writes itself; an allowed user attribute may not take them.
ENDPOINT_ID_ATTRIBUTE: Final = "pixel_relay_endpoint_id"
USER_ID_ATTRIBUTE: Final = "pixel_relay_user_id"

DOMAIN: Final = Setting(
    "PROFILES_DOMAIN",
    "the Customer Profiles domain events are recorded in (your Connect instance's)",
    model=("customer-profiles", ACTION, "DomainName"),
)
OBJECT_TYPE: Final = Setting(
    "PROFILES_OBJECT_TYPE",
    "the object type each event is stored as (`make profiles-setup` defines it)",
    default="PixelRelayEvent",
    model=("customer-profiles", ACTION, "ObjectTypeName"),
)
TRIGGER_EVENTS: Final = Setting(
    "PROFILES_TRIGGER_EVENTS",
    "event types that get an event trigger (pixel-relay-<event>), comma-separated",
    default="",
)
WRITE_THREADS: Final = Setting(
    "PROFILES_WRITE_THREADS",
    f"calls of one batch in flight at once, 1-{MAX_WRITE_THREADS}",
    default=str(DEFAULT_WRITE_THREADS),
)
VARIABLES: Final = (DOMAIN, OBJECT_TYPE, TRIGGER_EVENTS, WRITE_THREADS)


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
            domain=DOMAIN.read(environ),
            object_type=_object_type(environ),
            timeout_seconds=reader.delivery_timeout(),
            user_attributes=mappable_attributes(reader.attribute_names("ALLOWED_USER_ATTRIBUTES")),
            trigger_events=trigger_events(reader.names(TRIGGER_EVENTS.variable)),
            write_threads=reader.integer(
                WRITE_THREADS.variable,
                default=DEFAULT_WRITE_THREADS,
                low=1,
                high=MAX_WRITE_THREADS,
            ),
        )


def _object_type(environ: Mapping[str, str]) -> str:
    name = OBJECT_TYPE.read(environ)
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
