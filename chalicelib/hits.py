"""A pixel hit's query string, turned into a validated Event or refused with its reason.

Every Pinpoint quota is checked here, at the edge, because Pinpoint itself drops some bad
events without saying so (an attribute value over 200 characters, for one) and the GTM tag
that sent them only ever learns whether the image loaded. The per-field rules are
`chalicelib.rules`, which the consumer applies again when it decodes a message; what is
here is reading the query string and the pixel's policy (allowlists, time window). Refusal
messages name the parameter and the rule, and never echo the value: they reach browsers and
logs.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from chalicelib import clock, rules
from chalicelib.env import Reader
from chalicelib.events import Event, ProfileUpdate, Session
from chalicelib.rules import FieldError, format_instant

EVENT_ATTRIBUTE = "evat_"
EVENT_METRIC = "evmt_"
USER_ATTRIBUTE = "usat_"
ENDPOINT_ATTRIBUTE = "enat_"
ENDPOINT_METRIC = "enmt_"
PREFIXES = (EVENT_ATTRIBUTE, EVENT_METRIC, USER_ATTRIBUTE, ENDPOINT_ATTRIBUTE, ENDPOINT_METRIC)
SINGLE_VALUED = (
    "event",
    "endpoint_id",
    "timestamp",
    "event_id",
    "session_id",
    "session_start",
    "user_id",
    "sent_at",
    "consent",
)
# The query parameter that carries a signed hit's token unless TOKEN_PARAMETER names another
# (chalicelib/signing); here because the pixel reads it whether or not signing is loaded.
TOKEN_PARAMETER = "token"
# PublicEndpoint fields that decide where and whether messages are delivered. No parameter
# maps to them; naming one is refused so nobody believes they set it.
DELIVERY_FIELDS = frozenset(
    {
        "address",
        "channeltype",
        "optout",
        "endpointstatus",
        "effectivedate",
        "location",
        "demographic",
        "requestid",
    }
)

# An event attribute or metric whose whole value is one of these is what GTM writes for an
# unset data-layer variable: the parameter is dropped (and counted), the event kept.
INVENTED_VALUES = rules.INVENTED_VALUES


@dataclass(frozen=True)
class HitPolicy:
    """What an anonymous hit may write, and how strictly its parameters are read."""

    allowed_user_attributes: frozenset[str] = frozenset()
    allowed_endpoint_attributes: frozenset[str] = frozenset()
    allowed_endpoint_metrics: frozenset[str] = frozenset()
    allow_anonymous_user_id: bool = False
    strict_parameters: bool = False
    ignored_parameters: frozenset[str] = frozenset({"gtmcb"})
    max_event_age: timedelta = timedelta(hours=24)
    max_clock_ahead: timedelta = timedelta(minutes=10)

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> HitPolicy:
        reader = Reader(environ)
        return cls(
            allowed_user_attributes=reader.attribute_names("ALLOWED_USER_ATTRIBUTES"),
            allowed_endpoint_attributes=reader.attribute_names("ALLOWED_ENDPOINT_ATTRIBUTES"),
            allowed_endpoint_metrics=reader.attribute_names("ALLOWED_ENDPOINT_METRICS"),
            allow_anonymous_user_id=reader.boolean("ALLOW_ANONYMOUS_USER_ID", default=False),
            strict_parameters=reader.boolean("STRICT_PARAMETERS", default=False),
            ignored_parameters=reader.names("IGNORED_PARAMETERS", default="gtmcb"),
            max_event_age=timedelta(
                seconds=reader.integer(
                    "MAX_EVENT_AGE_SECONDS", default=86_400, low=0, high=30 * 86_400
                )
            ),
            max_clock_ahead=timedelta(
                seconds=reader.integer("MAX_CLOCK_AHEAD_SECONDS", default=600, low=0, high=86_400)
            ),
        )


class HitRefusedError(ValueError):
    """When a hit breaks a parameter rule; str() is the reason sent back to the browser."""

    def __init__(self, parameter: str, rule: str, code: str) -> None:
        shown = parameter if len(parameter) <= 64 else parameter[:61] + "..."
        super().__init__(f"{shown}: {rule}")
        self.parameter = parameter
        self.code = code


@dataclass(frozen=True)
class AcceptedHit:
    """A valid hit; the parameter names it carried that nothing reads; and the `evat_` /
    `evmt_` parameters left out because GTM wrote `undefined` or `null` for them."""

    event: Event
    unknown_parameters: tuple[str, ...]
    dropped_parameters: tuple[str, ...] = ()


def new_event_id() -> str:
    return str(uuid.uuid4())


def parse_hit(
    params: Mapping[str, Sequence[str]],
    policy: HitPolicy,
    received_at: datetime,
    make_event_id: Callable[[], str] = new_event_id,
) -> AcceptedHit:
    """Validate one hit's query parameters; raise HitRefusedError with the first broken rule."""
    try:
        return _HitParser(params, policy, received_at).parse(make_event_id)
    except FieldError as error:
        raise HitRefusedError(error.field, error.rule, error.code) from None


class _HitParser:
    def __init__(
        self, params: Mapping[str, Sequence[str]], policy: HitPolicy, received_at: datetime
    ) -> None:
        # A name with no value at all (a mapping can hold one, a query string cannot) reads
        # as an empty value, so it meets the same rules as `name=`.
        self._params = {name: values or [""] for name, values in params.items()}
        self._policy = policy
        self._received_at = received_at
        self._sent_at: datetime | None = None
        self._dropped: list[str] = []

    def parse(self, make_event_id: Callable[[], str]) -> AcceptedHit:
        unknown = self._check_names()
        self._sent_at = self._sent_at_instant()
        client_timestamp = self._client_instant("timestamp")
        timestamp = self._received_at if client_timestamp is None else client_timestamp[1]
        attributes = self._event_attributes()
        metrics = self._metrics(EVENT_METRIC, drop_invented=True)
        rules.event_keys("evat_/evmt_", len(attributes), len(metrics))
        event = Event(
            event_id=self._identifier("event_id", required=False) or make_event_id(),
            event_type=self._event_type(),
            endpoint_id=self._identifier("endpoint_id", required=True) or "",
            timestamp=format_instant(timestamp),
            received_at=format_instant(self._received_at),
            session=self._session(timestamp),
            attributes=attributes,
            metrics=metrics,
            profile=self._profile(),
            client_timestamp=_original(client_timestamp),
            consent=self._consent(),
        )
        return AcceptedHit(
            event=event, unknown_parameters=unknown, dropped_parameters=tuple(self._dropped)
        )

    # Names -------------------------------------------------------------------------------

    def _check_names(self) -> tuple[str, ...]:
        unknown: list[str] = []
        for name, values in self._params.items():
            if name.replace("_", "").lower() in DELIVERY_FIELDS:
                raise HitRefusedError(
                    name, "delivery fields cannot be set from a pixel", "reserved_name"
                )
            if name in SINGLE_VALUED or name.startswith(PREFIXES):
                if name in PREFIXES:
                    raise HitRefusedError(name, "the name after the prefix is empty", "empty_name")
                if len(values) > 1 and not name.startswith((USER_ATTRIBUTE, ENDPOINT_ATTRIBUTE)):
                    raise HitRefusedError(
                        name, f"given {len(values)} times; send it once", "repeated_parameter"
                    )
                continue
            if name in self._policy.ignored_parameters:
                continue
            if self._policy.strict_parameters:
                raise HitRefusedError(name, "unknown parameter (strict mode)", "unknown_parameter")
            unknown.append(name)
        return tuple(unknown)

    def _single(self, name: str) -> str | None:
        values = self._params.get(name)
        if not values or values[0] == "":
            return None
        return values[0]

    def _named(self, prefix: str) -> list[tuple[str, str, Sequence[str]]]:
        """(parameter, attribute name, values) for every parameter with this prefix."""
        found = []
        for parameter, values in self._params.items():
            if parameter.startswith(prefix):
                name = parameter[len(prefix) :]
                rules.attribute_key(parameter, name)
                found.append((parameter, name, values))
        return found

    def _invented(self, parameter: str, value: str) -> bool:
        """True (and the parameter noted) for a value GTM made up for an unset variable."""
        if value in INVENTED_VALUES:
            self._dropped.append(parameter)
            return True
        return False

    # Event -------------------------------------------------------------------------------

    def _event_type(self) -> str:
        value = self._single("event")
        if value is None:
            raise HitRefusedError("event", "is required", "missing_parameter")
        _refuse_invented("event", value)
        return rules.event_type("event", value)

    def _identifier(self, name: str, required: bool) -> str | None:
        value = self._single(name)
        if value is None:
            if required:
                raise HitRefusedError(name, "is required", "missing_parameter")
            return None
        _refuse_invented(name, value)
        return rules.identifier(name, value)

    def _sent_at_instant(self) -> datetime | None:
        """The client's clock as the request left; no time window (a wrong clock is what
        it is there to reveal)."""
        value = self._single("sent_at")
        return None if value is None else rules.hit_instant("sent_at", value)

    def _consent(self) -> dict[str, str] | None:
        value = self._single("consent")
        return None if value is None else rules.consent_text("consent", value)

    def _client_instant(self, name: str) -> tuple[datetime, datetime] | None:
        """An instant of the client's: (as sent, corrected by `sent_at` and clamped to the
        receive time), the corrected one within the pixel's time window."""
        value = self._single(name)
        if value is None:
            return None
        sent = rules.hit_instant(name, value)
        try:
            instant = clock.corrected_time(sent, self._sent_at, self._received_at)
        except clock.ClockRangeError as error:
            raise HitRefusedError(name, str(error), "bad_timestamp") from None
        # The time window is the pixel's policy, not a rule of the message: a message
        # replayed from the dead-letter queue days later is still valid.
        earliest = self._received_at - self._policy.max_event_age
        latest = self._received_at + self._policy.max_clock_ahead
        if instant < earliest:
            raise HitRefusedError(
                name,
                f"is more than {_describe(self._policy.max_event_age.total_seconds())} old",
                "timestamp_out_of_range",
            )
        if instant > latest:
            raise HitRefusedError(
                name,
                "is more than "
                f"{_describe(self._policy.max_clock_ahead.total_seconds())} in the future",
                "timestamp_out_of_range",
            )
        # Correct first, then clamp: nothing happened after the pixel received it, and the
        # time Customer Profiles orders a profile's updates by must not be forged forward.
        return sent, clock.clamped_time(instant, self._received_at)

    def _session(self, timestamp: datetime) -> Session | None:
        session_id = self._identifier("session_id", required=False)
        client_start = self._client_instant("session_start")
        start = None if client_start is None else client_start[1]
        if session_id is None:
            if start is not None:
                raise HitRefusedError("session_start", "needs session_id", "missing_parameter")
            return None
        if start is None:
            start = timestamp
        rules.session_start("session_start", start, timestamp)
        return Session(id=session_id, start=format_instant(start))

    def _event_attributes(self) -> dict[str, str]:
        attributes = {}
        for parameter, name, values in self._named(EVENT_ATTRIBUTE):
            if not self._invented(parameter, values[0]):
                attributes[name] = rules.event_attribute_value(parameter, values[0])
        return attributes

    def _metrics(self, prefix: str, drop_invented: bool = False) -> dict[str, float]:
        metrics = {}
        for parameter, name, values in self._named(prefix):
            if not (drop_invented and self._invented(parameter, values[0])):
                metrics[name] = rules.metric_text(parameter, values[0])
        return metrics

    # Profile -----------------------------------------------------------------------------

    def _profile(self) -> ProfileUpdate:
        user_attributes = self._profile_attributes(
            USER_ATTRIBUTE, self._policy.allowed_user_attributes, "ALLOWED_USER_ATTRIBUTES"
        )
        endpoint_attributes = self._profile_attributes(
            ENDPOINT_ATTRIBUTE,
            self._policy.allowed_endpoint_attributes,
            "ALLOWED_ENDPOINT_ATTRIBUTES",
        )
        endpoint_metrics = self._metrics(ENDPOINT_METRIC)
        for name in endpoint_metrics:
            _check_allowed(
                ENDPOINT_METRIC + name,
                name,
                self._policy.allowed_endpoint_metrics,
                "ALLOWED_ENDPOINT_METRICS",
            )
        user_id = self._identifier("user_id", required=False)
        if user_id is not None and not self._policy.allow_anonymous_user_id:
            raise HitRefusedError(
                "user_id",
                "anonymous hits may not link an endpoint to a user (ALLOW_ANONYMOUS_USER_ID)",
                "not_allowed",
            )
        rules.profile_size(
            ("usat_/enat_/enmt_", "usat_/enat_"),
            user_id,
            user_attributes,
            endpoint_attributes,
            endpoint_metrics,
        )
        return ProfileUpdate(
            user_id=user_id,
            user_attributes=user_attributes,
            endpoint_attributes=endpoint_attributes,
            endpoint_metrics=endpoint_metrics,
        )

    def _profile_attributes(
        self, prefix: str, allowed: frozenset[str], setting: str
    ) -> dict[str, tuple[str, ...]]:
        # An empty value, or the "undefined"/"null" GTM writes for an unset variable, would
        # overwrite the stored attribute: rules.profile_values refuses both, so the tag's
        # author learns to leave the parameter out.
        attributes = {}
        for parameter, name, values in self._named(prefix):
            _check_allowed(parameter, name, allowed, setting)
            attributes[name] = rules.profile_values(parameter, values)
        return attributes


def _refuse_invented(parameter: str, value: str) -> None:
    """An identifier is never the text GTM writes for an unset variable: every visitor
    without the variable would share one profile called "undefined"."""
    if value in INVENTED_VALUES:
        raise HitRefusedError(
            parameter,
            f'is "{value}", what GTM writes for an unset variable; send the real value '
            "or leave the hit out",
            "undefined_value",
        )


def _original(instant: tuple[datetime, datetime] | None) -> str | None:
    """The client's own time, kept when the pixel corrected or clamped it (else None)."""
    if instant is None or instant[0] == instant[1]:
        return None
    return format_instant(instant[0])


def _check_allowed(parameter: str, name: str, allowed: frozenset[str], setting: str) -> None:
    if name not in allowed:
        raise HitRefusedError(
            parameter,
            f"anonymous hits may not write this profile attribute (not in {setting})",
            "not_allowed",
        )


def _describe(seconds: float) -> str:
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"
