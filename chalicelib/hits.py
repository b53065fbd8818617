"""A pixel hit's query string, turned into a validated Event or refused with its reason.

Every Pinpoint quota is checked here, at the edge, because Pinpoint itself drops some bad
events without saying so (an attribute value over 200 characters, for one) and the GTM tag
that sent them only ever learns whether the image loaded. Refusal messages name the parameter
and the rule, and never echo the value: they reach browsers and logs.
"""

from __future__ import annotations

import json
import math
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from chalicelib import limits
from chalicelib.config import HitPolicy
from chalicelib.events import Event, ProfileUpdate, Session

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
)
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

# fullmatch, and [0-9] rather than \d: "$" would let a final newline through, and \d
# would take Arabic-Indic digits.
_IDENTIFIER = re.compile(r"[\x21-\x7e]+")
_DECIMAL = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_EPOCH_MILLIS = re.compile(r"[0-9]{1,15}")
# Characters an SQS message may carry (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
# #x10000-#x10FFFF); controls are refused too, tab and newline included.
_UNSENDABLE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# GTM inserts variables unencoded, so an offset's "+" arrives as a space.
_OFFSET_AS_SPACE = re.compile(r" ([0-9]{2}:?[0-9]{2})\Z")


class HitRefusedError(ValueError):
    """When a hit breaks a parameter rule; str() is the reason sent back to the browser."""

    def __init__(self, parameter: str, rule: str, code: str) -> None:
        shown = parameter if len(parameter) <= 64 else parameter[:61] + "..."
        super().__init__(f"{shown}: {rule}")
        self.parameter = parameter
        self.code = code


@dataclass(frozen=True)
class AcceptedHit:
    """A valid hit, and the parameter names it carried that nothing reads."""

    event: Event
    unknown_parameters: tuple[str, ...]


def new_event_id() -> str:
    return str(uuid.uuid4())


def format_instant(instant: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, the form Pinpoint shows back."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def parse_hit(
    params: Mapping[str, Sequence[str]],
    policy: HitPolicy,
    received_at: datetime,
    make_event_id: Callable[[], str] = new_event_id,
) -> AcceptedHit:
    """Validate one hit's query parameters; raise HitRefusedError with the first broken rule."""
    return _HitParser(params, policy, received_at).parse(make_event_id)


class _HitParser:
    def __init__(
        self, params: Mapping[str, Sequence[str]], policy: HitPolicy, received_at: datetime
    ) -> None:
        # A name with no value at all (a mapping can hold one, a query string cannot) reads
        # as an empty value, so it meets the same rules as `name=`.
        self._params = {name: values or [""] for name, values in params.items()}
        self._policy = policy
        self._received_at = received_at

    def parse(self, make_event_id: Callable[[], str]) -> AcceptedHit:
        unknown = self._check_names()
        timestamp = self._instant("timestamp") or self._received_at
        attributes = self._event_attributes()
        metrics = self._metrics(EVENT_METRIC)
        if len(attributes) + len(metrics) > limits.EVENT_ATTRIBUTE_AND_METRIC_KEYS:
            raise HitRefusedError(
                "evat_/evmt_",
                f"{len(attributes) + len(metrics)} attributes and metrics; Pinpoint allows "
                f"{limits.EVENT_ATTRIBUTE_AND_METRIC_KEYS} per event",
                "too_many_keys",
            )
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
        )
        return AcceptedHit(event=event, unknown_parameters=unknown)

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
                _check_key(parameter, name)
                found.append((parameter, name, values))
        return found

    # Event -------------------------------------------------------------------------------

    def _event_type(self) -> str:
        value = self._single("event")
        if value is None:
            raise HitRefusedError("event", "is required", "missing_parameter")
        if len(value) > limits.EVENT_TYPE_LENGTH:
            raise HitRefusedError(
                "event",
                f"is {len(value)} characters; the limit is {limits.EVENT_TYPE_LENGTH}",
                "too_long",
            )
        if value.startswith("_"):
            raise HitRefusedError(
                "event", "names starting with _ are Pinpoint's built-in events", "reserved_name"
            )
        if not _printable(value):
            raise HitRefusedError(
                "event", "must be printable, without leading or trailing spaces", "bad_text"
            )
        return value

    def _identifier(self, name: str, required: bool) -> str | None:
        value = self._single(name)
        if value is None:
            if required:
                raise HitRefusedError(name, "is required", "missing_parameter")
            return None
        if len(value) > limits.IDENTIFIER_LENGTH:
            raise HitRefusedError(
                name,
                f"is {len(value)} characters; the limit is {limits.IDENTIFIER_LENGTH}",
                "too_long",
            )
        if not _IDENTIFIER.fullmatch(value):
            raise HitRefusedError(name, "must be printable ASCII without spaces", "bad_identifier")
        return value

    def _instant(self, name: str) -> datetime | None:
        value = self._single(name)
        if value is None:
            return None
        instant = _parse_instant(name, value)
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
        return instant

    def _session(self, timestamp: datetime) -> Session | None:
        session_id = self._identifier("session_id", required=False)
        start = self._instant("session_start")
        if session_id is None:
            if start is not None:
                raise HitRefusedError("session_start", "needs session_id", "missing_parameter")
            return None
        if start is None:
            start = timestamp
        elif start > timestamp:
            raise HitRefusedError(
                "session_start", "is after the event's timestamp", "bad_timestamp"
            )
        return Session(id=session_id, start=format_instant(start))

    def _event_attributes(self) -> dict[str, str]:
        attributes = {}
        for parameter, name, values in self._named(EVENT_ATTRIBUTE):
            attributes[name] = _check_value(
                parameter, values[0], limits.EVENT_ATTRIBUTE_VALUE_LENGTH
            )
        return attributes

    def _metrics(self, prefix: str) -> dict[str, float]:
        return {
            name: _parse_metric(parameter, values[0])
            for parameter, name, values in self._named(prefix)
        }

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
        profile = ProfileUpdate(
            user_id=user_id,
            user_attributes=user_attributes,
            endpoint_attributes=endpoint_attributes,
            endpoint_metrics=endpoint_metrics,
        )
        _check_profile_size(profile)
        return profile

    def _profile_attributes(
        self, prefix: str, allowed: frozenset[str], setting: str
    ) -> dict[str, tuple[str, ...]]:
        attributes = {}
        for parameter, name, values in self._named(prefix):
            _check_allowed(parameter, name, allowed, setting)
            unique = tuple(dict.fromkeys(values))
            if len(unique) > limits.VALUES_PER_ATTRIBUTE:
                raise HitRefusedError(
                    parameter,
                    f"{len(unique)} values; Pinpoint allows {limits.VALUES_PER_ATTRIBUTE}",
                    "too_many_values",
                )
            for value in unique:
                if not value:
                    # An empty value would blank the stored attribute: leave the parameter
                    # out instead (GTM sends undefined variables as empty strings).
                    raise HitRefusedError(parameter, "value is empty", "empty_value")
                _check_value(parameter, value, limits.ENDPOINT_ATTRIBUTE_VALUE_LENGTH)
            attributes[name] = unique
        return attributes


def _check_key(parameter: str, name: str) -> None:
    if len(name) > limits.ATTRIBUTE_KEY_LENGTH:
        raise HitRefusedError(
            parameter,
            f"name is {len(name)} characters; Pinpoint allows {limits.ATTRIBUTE_KEY_LENGTH}",
            "too_long",
        )
    if not _printable(name):
        raise HitRefusedError(
            parameter, "name must be printable, without leading or trailing spaces", "bad_text"
        )


def _printable(text: str) -> bool:
    return text.isprintable() and text == text.strip() and not _UNSENDABLE.search(text)


def _check_value(parameter: str, value: str, limit: int) -> str:
    if len(value) > limit:
        raise HitRefusedError(
            parameter, f"value is {len(value)} characters; Pinpoint allows {limit}", "too_long"
        )
    if _UNSENDABLE.search(value):
        raise HitRefusedError(
            parameter, "value contains a control or non-character code point", "bad_text"
        )
    return value


def _check_allowed(parameter: str, name: str, allowed: frozenset[str], setting: str) -> None:
    if name not in allowed:
        raise HitRefusedError(
            parameter,
            f"anonymous hits may not write this profile attribute (not in {setting})",
            "not_allowed",
        )


def _check_profile_size(profile: ProfileUpdate) -> None:
    count = (
        len(profile.user_attributes)
        + len(profile.endpoint_attributes)
        + len(profile.endpoint_metrics)
    )
    if count > limits.ENDPOINT_ATTRIBUTES:
        raise HitRefusedError(
            "usat_/enat_/enmt_",
            f"{count} profile attributes; Pinpoint allows {limits.ENDPOINT_ATTRIBUTES}",
            "too_many_keys",
        )
    size = len(
        json.dumps(
            [profile.user_id, profile.user_attributes, profile.endpoint_attributes],
            ensure_ascii=False,
        ).encode()
    )
    if size > limits.ENDPOINT_BYTES:
        raise HitRefusedError(
            "usat_/enat_",
            f"profile update is {size} bytes; Pinpoint allows {limits.ENDPOINT_BYTES}",
            "too_large",
        )


def _parse_metric(parameter: str, value: str) -> float:
    if not _DECIMAL.fullmatch(value):
        raise HitRefusedError(parameter, "must be a decimal number", "bad_number")
    number = float(value)
    if not math.isfinite(number):
        raise HitRefusedError(parameter, "must be a finite number", "bad_number")
    return number


def _parse_instant(parameter: str, value: str) -> datetime:
    if _EPOCH_MILLIS.fullmatch(value):
        try:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise HitRefusedError(
                parameter, "epoch milliseconds out of range", "bad_timestamp"
            ) from None
    try:
        instant = datetime.fromisoformat(_OFFSET_AS_SPACE.sub(r"+\1", value))
    except ValueError:
        raise HitRefusedError(
            parameter,
            "must be ISO 8601 with an offset or Z, or epoch milliseconds",
            "bad_timestamp",
        ) from None
    if instant.tzinfo is None:
        raise HitRefusedError(parameter, "needs a UTC offset or Z", "bad_timestamp")
    return instant


def _describe(seconds: float) -> str:
    if seconds % 3600 == 0 and seconds >= 3600:
        return f"{int(seconds // 3600)} h"
    if seconds % 60 == 0 and seconds >= 60:
        return f"{int(seconds // 60)} min"
    return f"{int(seconds)} s"
