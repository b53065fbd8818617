"""Customer Profiles' settings: the domain and object type events are written to, the user
attributes mapped onto profiles, the objects a profile keeps, the event triggers with their
limits and campaigns, and the write threads."""

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

# The objects a profile keeps (docs/destinations/customer-profiles.md, "The object limit").
# Customer Profiles keeps 1,000 objects per profile across all object types by default and
# does not say what happens beyond; pixel-relay's objects rotate through PROFILES_EVENTS_KEPT
# slots per profile, so its object type never reaches PROFILES_MAX_OBJECTS and leaves the
# rest of the profile's room to your other data.
DEFAULT_EVENTS_KEPT: Final = 100
DEFAULT_MAX_OBJECTS: Final = 200
MAX_OBJECTS_PER_PROFILE: Final = 1000  # AWS's default across all object types of a profile
# "Data limits are estimates [...] off by a few units in either direction": the slots stay
# this far below the object type's limit.
OBJECT_LIMIT_MARGIN: Final = 10
DEFAULT_OBJECT_EXPIRATION_DAYS: Final = 365  # AWS's default ("the default 365 days")
MAX_OBJECT_EXPIRATION_DAYS: Final = 1098  # PutProfileObjectType.ExpirationDays (the model)

# Every trigger's limits (EventTriggerLimits): at most PROFILES_TRIGGER_MAX_STARTS campaign
# starts per profile per PROFILES_TRIGGER_PERIOD, and no start from an event delivered more
# than PROFILES_TRIGGER_EXPIRATION_SECONDS after it happened (a retry, a replay).
DEFAULT_TRIGGER_MAX_STARTS: Final = 1
MAX_TRIGGER_MAX_STARTS: Final = 1000  # Period.MaxInvocationsPerProfile (the model)
DEFAULT_TRIGGER_PERIOD: Final = "1 DAYS"
# Period.Unit and Period.Value as botocore's model and the CloudFormation resource schema
# both give them (an older CloudFormation page lists HOURS to MONTHS and 1-24 only).
TRIGGER_PERIOD_UNITS: Final = ("MINUTES", "HOURS", "DAYS", "WEEKS", "MONTHS")
MAX_TRIGGER_PERIOD_VALUE: Final = 60
DEFAULT_TRIGGER_EXPIRATION_SECONDS: Final = 3600
MIN_TRIGGER_EXPIRATION_SECONDS: Final = 60
MAX_TRIGGER_EXPIRATION_SECONDS: Final = 30 * 86_400
# A campaign ARN, as the Service Authorization Reference writes connect-campaigns' resource
# (arn:${Partition}:connect-campaigns:${Region}:${Account}:campaign/${CampaignId}).
_CAMPAIGN_ARN: Final = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):connect-campaigns:(?P<region>[a-z0-9-]+)"
    r":(?P<account>[0-9]{12}):campaign/(?P<id>[-A-Za-z0-9]+)"
)

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
CAMPAIGNS: Final = Setting(
    "PROFILES_CAMPAIGNS",
    "event_type=campaign-ARN pairs, comma-separated: the Amazon Connect outbound campaign"
    " each event type's trigger starts",
    default="",
)
TRIGGER_MAX_STARTS: Final = Setting(
    "PROFILES_TRIGGER_MAX_STARTS",
    f"campaign starts per profile per PROFILES_TRIGGER_PERIOD, 1-{MAX_TRIGGER_MAX_STARTS}",
    default=str(DEFAULT_TRIGGER_MAX_STARTS),
)
TRIGGER_PERIOD: Final = Setting(
    "PROFILES_TRIGGER_PERIOD",
    "the period of PROFILES_TRIGGER_MAX_STARTS: `<1-60> <MINUTES|HOURS|DAYS|WEEKS|MONTHS>`",
    default=DEFAULT_TRIGGER_PERIOD,
)
TRIGGER_EXPIRATION: Final = Setting(
    "PROFILES_TRIGGER_EXPIRATION_SECONDS",
    "an event delivered more than this after it happened starts no campaign",
    default=str(DEFAULT_TRIGGER_EXPIRATION_SECONDS),
)
EVENTS_KEPT: Final = Setting(
    "PROFILES_EVENTS_KEPT",
    "objects kept per profile; a newer event replaces one of them",
    default=str(DEFAULT_EVENTS_KEPT),
)
MAX_OBJECTS: Final = Setting(
    "PROFILES_MAX_OBJECTS",
    "the object type's MaxProfileObjectCount, "
    f"PROFILES_EVENTS_KEPT + {OBJECT_LIMIT_MARGIN} or more",
    default=str(DEFAULT_MAX_OBJECTS),
)
OBJECT_EXPIRATION_DAYS: Final = Setting(
    "PROFILES_OBJECT_EXPIRATION_DAYS",
    "the object type's ExpirationDays",
    default=str(DEFAULT_OBJECT_EXPIRATION_DAYS),
)
VARIABLES: Final = (
    DOMAIN,
    OBJECT_TYPE,
    TRIGGER_EVENTS,
    WRITE_THREADS,
    CAMPAIGNS,
    TRIGGER_MAX_STARTS,
    TRIGGER_PERIOD,
    TRIGGER_EXPIRATION,
    EVENTS_KEPT,
    MAX_OBJECTS,
    OBJECT_EXPIRATION_DAYS,
)


@dataclass(frozen=True)
class Campaign:
    """One PROFILES_CAMPAIGNS pair: the event type whose trigger starts the campaign."""

    event_type: str
    arn: str

    @property
    def campaign_id(self) -> str:
        """The campaign's id, the last part of its ARN."""
        return self.arn.rsplit("/", 1)[-1]

    @property
    def region(self) -> str:
        return self.arn.split(":")[3]


@dataclass(frozen=True)
class TriggerLimits:
    """What every trigger pixel-relay defines carries as EventTriggerLimits."""

    max_starts: int = DEFAULT_TRIGGER_MAX_STARTS
    period_value: int = 1
    period_unit: str = "DAYS"
    expiration_seconds: int = DEFAULT_TRIGGER_EXPIRATION_SECONDS


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
    # PROFILES_CAMPAIGNS, in event type order: each trigger's campaign.
    campaigns: tuple[Campaign, ...] = ()
    trigger_limits: TriggerLimits = TriggerLimits()
    # The object slots a profile keeps (PROFILES_EVENTS_KEPT) and the object type's limits.
    events_kept: int = DEFAULT_EVENTS_KEPT
    max_objects: int = DEFAULT_MAX_OBJECTS
    object_expiration_days: int = DEFAULT_OBJECT_EXPIRATION_DAYS

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        reader = Reader(environ)
        events = trigger_events(reader.names(TRIGGER_EVENTS.variable))
        events_kept = reader.integer(
            EVENTS_KEPT.variable, default=DEFAULT_EVENTS_KEPT, low=1, high=MAX_OBJECTS_PER_PROFILE
        )
        max_objects = reader.integer(
            MAX_OBJECTS.variable,
            default=DEFAULT_MAX_OBJECTS,
            low=1,
            high=MAX_OBJECTS_PER_PROFILE,
        )
        if events_kept > max_objects - OBJECT_LIMIT_MARGIN:
            raise ConfigError(
                EVENTS_KEPT.variable,
                f"is {events_kept}; PROFILES_MAX_OBJECTS ({max_objects}) must be at least"
                f" {OBJECT_LIMIT_MARGIN} more, or the profile may reach its object limit",
            )
        return cls(
            domain=DOMAIN.read(environ),
            object_type=_object_type(environ),
            timeout_seconds=reader.delivery_timeout(),
            user_attributes=profile_attributes(reader),
            trigger_events=events,
            write_threads=reader.integer(
                WRITE_THREADS.variable,
                default=DEFAULT_WRITE_THREADS,
                low=1,
                high=MAX_WRITE_THREADS,
            ),
            campaigns=campaigns(environ.get(CAMPAIGNS.variable, ""), events),
            trigger_limits=trigger_limits(reader, environ),
            events_kept=events_kept,
            max_objects=max_objects,
            object_expiration_days=reader.integer(
                OBJECT_EXPIRATION_DAYS.variable,
                default=DEFAULT_OBJECT_EXPIRATION_DAYS,
                low=1,
                high=MAX_OBJECT_EXPIRATION_DAYS,
            ),
        )

    def campaign_for(self, event_type: str) -> Campaign | None:
        return next((c for c in self.campaigns if c.event_type == event_type), None)


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


def profile_attributes(reader: Reader) -> frozenset[str]:
    """The user attributes the object type maps onto the profile: those anonymous hits may
    write (ALLOWED_USER_ATTRIBUTES) and those only signed hits may write
    (SIGNED_USER_ATTRIBUTES), each refused here under its own variable if it cannot be
    mapped."""
    allowed = mappable_attributes(reader.attribute_names("ALLOWED_USER_ATTRIBUTES"))
    signed = mappable_attributes(
        reader.attribute_names("SIGNED_USER_ATTRIBUTES"), "SIGNED_USER_ATTRIBUTES"
    )
    return allowed | signed


def mappable_attributes(
    names: Iterable[str], variable: str = "ALLOWED_USER_ATTRIBUTES"
) -> frozenset[str]:
    """User attribute names, refused here (at start) if the object type could not map one:
    an event would then carry an attribute that never reaches the profile."""
    allowed = frozenset(names)
    for name in sorted(allowed):
        if not _MAPPABLE_ATTRIBUTE.fullmatch(name):
            raise ConfigError(
                variable, f"{name!r}: customer-profiles maps names of letters, digits and _ only"
            )
        if name in (ENDPOINT_ID_ATTRIBUTE, USER_ID_ATTRIBUTE):
            raise ConfigError(variable, f"{name!r} is the profile attribute pixel-relay sets")
    return allowed


def campaigns(raw: str, trigger_event_types: tuple[str, ...]) -> tuple[Campaign, ...]:
    """PROFILES_CAMPAIGNS: `event_type=campaign-ARN` pairs, comma-separated. Each event type
    has a trigger (it is in PROFILES_TRIGGER_EVENTS) and one campaign; each campaign is
    started by one trigger (PutIntegration's EventTriggerNames holds one name); each ARN is
    checked offline against connectcampaignsv2's model and the Uri it becomes."""
    variable = CAMPAIGNS.variable
    found: dict[str, Campaign] = {}
    arns: set[str] = set()
    for part in (p.strip() for p in raw.split(",")):
        if not part:
            if raw.strip():
                raise ConfigError(variable, "has an empty pair; separate pairs with single commas")
            continue
        event_type, equals, arn = (text.strip() for text in part.partition("="))
        if not equals or not event_type or not arn:
            raise ConfigError(variable, f"{part[:80]!r}: write event_type=campaign-ARN")
        if event_type not in trigger_event_types:
            raise ConfigError(
                variable,
                f"{event_type!r} has no event trigger: add it to PROFILES_TRIGGER_EVENTS",
            )
        if event_type in found:
            raise ConfigError(variable, f"{event_type!r} is given two campaigns")
        problem = campaign_arn_problem(arn)
        if problem is not None:
            raise ConfigError(variable, f"{event_type}: {problem}")
        if arn in arns:
            raise ConfigError(
                variable, f"{arn} is given twice: one integration starts it from one trigger"
            )
        arns.add(arn)
        found[event_type] = Campaign(event_type, arn)
    return tuple(found[event] for event in sorted(found))


def campaign_arn_problem(arn: str) -> str | None:
    """Why `arn` cannot be a campaign's ARN, or None: connectcampaignsv2's model (the
    CampaignArn shape, its ARN pattern, the campaign id's), PutIntegration's Uri, and the
    campaign resource the Service Authorization Reference names."""
    from chalicelib.service_models import model_rule, output_rule

    rules = (
        output_rule("connectcampaignsv2", "DescribeCampaign", "campaign", "arn"),
        model_rule("connectcampaignsv2", "CreateCampaign", "connectCampaignFlowArn"),
        model_rule("customer-profiles", "PutIntegration", "Uri"),
    )
    for rule in rules:
        problem = rule.problem(arn)
        if problem is not None:
            return f"the campaign ARN {problem}"
    match = _CAMPAIGN_ARN.fullmatch(arn)
    if match is None:
        return (
            "is not a campaign's ARN: arn:aws:connect-campaigns:<region>:<account>:"
            "campaign/<campaign id>"
        )
    id_problem = model_rule("connectcampaignsv2", "DescribeCampaign", "id").problem(
        match.group("id")
    )
    return None if id_problem is None else f"the campaign id {id_problem}"


def trigger_limits(reader: Reader, environ: Mapping[str, str]) -> TriggerLimits:
    """The limits every trigger carries, each from its setting (defaults: one start per
    profile per day, none from an event delivered over an hour after it happened)."""
    value, unit = trigger_period(environ.get(TRIGGER_PERIOD.variable, ""))
    return TriggerLimits(
        max_starts=reader.integer(
            TRIGGER_MAX_STARTS.variable,
            default=DEFAULT_TRIGGER_MAX_STARTS,
            low=1,
            high=MAX_TRIGGER_MAX_STARTS,
        ),
        period_value=value,
        period_unit=unit,
        expiration_seconds=reader.integer(
            TRIGGER_EXPIRATION.variable,
            default=DEFAULT_TRIGGER_EXPIRATION_SECONDS,
            low=MIN_TRIGGER_EXPIRATION_SECONDS,
            high=MAX_TRIGGER_EXPIRATION_SECONDS,
        ),
    )


def trigger_period(raw: str) -> tuple[int, str]:
    """PROFILES_TRIGGER_PERIOD, `<value> <unit>` (`1 DAYS`, `12 hours`): (value, UNIT)."""
    text = raw.strip() or DEFAULT_TRIGGER_PERIOD
    number, _, unit = text.partition(" ")
    unit = unit.strip().upper()
    units = ", ".join(TRIGGER_PERIOD_UNITS)
    if not number.isdigit() or unit not in TRIGGER_PERIOD_UNITS:
        raise ConfigError(
            TRIGGER_PERIOD.variable, f"write <number> <unit>, the unit one of {units}: '1 DAYS'"
        )
    value = int(number)
    if not 1 <= value <= MAX_TRIGGER_PERIOD_VALUE:
        raise ConfigError(
            TRIGGER_PERIOD.variable, f"the number must be between 1 and {MAX_TRIGGER_PERIOD_VALUE}"
        )
    return value, unit
