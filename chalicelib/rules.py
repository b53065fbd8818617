"""The rules each event field keeps, written once for the pixel and the consumer alike.

The pixel refuses a hit that breaks one of these rules (`chalicelib.hits`) and the consumer
parks a queue message that does (`Event.from_message`): one rule set, so a message the pixel
would never have written cannot reach a destination's request builder and fail its batch.

Only structure lives here: formats, lengths, character sets and counts. What an anonymous hit
may write (the profile allowlists, `user_id`) and how old or early its timestamp may be are
the pixel's policy, decided once at the edge; docs/message-format.md says why decode does not
apply them.

Lengths are counted in UTF-16 code units, as a service written in Java counts them: an emoji
is 2, so a value within a limit here is within it on the other side whatever it contains.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Final, TypeVar

from chalicelib import limits

# Values Google Tag Manager writes for a data-layer variable that is not set: JavaScript's
# String(undefined) and String(null). Never a real value of a profile attribute.
INVENTED_VALUES: Final = frozenset({"undefined", "null"})

# Google's consent types (the consent APIs of GTM's templates name these seven) and the two
# states a consent type has. A hit's `consent` parameter and a message's `consent` field
# carry a subset of the types, each with its state (docs/consent.md).
CONSENT_TYPES: Final = (
    "ad_storage",
    "analytics_storage",
    "ad_user_data",
    "ad_personalization",
    "functionality_storage",
    "personalization_storage",
    "security_storage",
)
CONSENT_STATES: Final = ("granted", "denied")

# fullmatch, and [0-9] rather than \d: "$" would let a final newline through, and \d
# would take Arabic-Indic digits.
_IDENTIFIER: Final = re.compile(r"[\x21-\x7e]+")
_DECIMAL: Final = re.compile(r"[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?")
_EPOCH_MILLIS: Final = re.compile(r"[0-9]{1,15}")
# Characters an SQS message may carry (#x9 #xA #xD #x20-#xD7FF #xE000-#xFFFD
# #x10000-#x10FFFF); controls are refused too, tab and newline included.
_UNSENDABLE: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff\ufffe\uffff]")
# GTM inserts variables unencoded, so an offset's "+" arrives as a space.
_OFFSET_AS_SPACE: Final = re.compile(r" ([0-9]{2}:?[0-9]{2})\Z")
# Decoding a queue message only (the consumer): patterns, compiled by `re` on first use
# (and kept in its cache), not on the pixel's cold start.
# The pixel's own form (format_instant); anything else is read, then normalised to it.
_CANONICAL_INSTANT: Final = r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}Z"
# A queue message's instants: RFC 3339 (ISO 8601 with seconds and a Z or an offset).
_MESSAGE_INSTANT: Final = (
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]{1,6})?(Z|[+-][0-9]{2}:[0-9]{2})"
)


_Instant = TypeVar("_Instant", datetime, str)


class FieldError(ValueError):
    """A field breaks a rule. `field` names it (a query parameter, or a message's JSON
    field), `rule` says what is wrong without echoing the value, `code` is the metric reason."""

    def __init__(self, field: str, rule: str, code: str) -> None:
        super().__init__(f"{field}: {rule}")
        self.field = field
        self.rule = rule
        self.code = code


# Text -------------------------------------------------------------------------------------


def utf16_length(text: str) -> int:
    """Length as Java and JavaScript count it: characters beyond U+FFFF are two units."""
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def printable(text: str) -> bool:
    return text.isprintable() and text == text.strip() and not _UNSENDABLE.search(text)


def _check_length(field: str, subject: str, text: str, limit: int, whose: str) -> None:
    if len(text) * 2 <= limit:
        return  # within the limit whatever the characters: nothing to count
    units = utf16_length(text)
    if units <= limit:
        return
    size = (
        f"{units} characters"
        if units == len(text)
        else f"{units} UTF-16 units ({len(text)} characters)"
    )
    allowed = f"the limit is {limit}" if whose == "" else f"{whose} allows {limit}"
    raise FieldError(field, f"{subject}is {size}; {allowed}", "too_long")


def event_type(field: str, value: str) -> str:
    if not value:
        raise FieldError(field, "is empty", "empty_value")
    _check_length(field, "", value, limits.EVENT_TYPE_LENGTH, "")
    if value.startswith("_"):
        raise FieldError(
            field, "names starting with _ are Pinpoint's built-in events", "reserved_name"
        )
    if not printable(value):
        raise FieldError(field, "must be printable, without leading or trailing spaces", "bad_text")
    return value


def identifier(field: str, value: str) -> str:
    """An endpoint, event, session or user id: short printable ASCII without spaces."""
    if not value:
        raise FieldError(field, "is empty", "empty_value")
    _check_length(field, "", value, limits.IDENTIFIER_LENGTH, "")
    if not _IDENTIFIER.fullmatch(value):
        raise FieldError(field, "must be printable ASCII without spaces", "bad_identifier")
    return value


def attribute_key(field: str, name: str) -> str:
    if not name:
        raise FieldError(field, "name is empty", "empty_name")
    _check_length(field, "name ", name, limits.ATTRIBUTE_KEY_LENGTH, "Pinpoint")
    if not printable(name):
        raise FieldError(
            field, "name must be printable, without leading or trailing spaces", "bad_text"
        )
    return name


def _sendable_value(field: str, value: str, limit: int) -> str:
    _check_length(field, "value ", value, limit, "Pinpoint")
    if _UNSENDABLE.search(value):
        raise FieldError(field, "value contains a control or non-character code point", "bad_text")
    return value


def event_attribute_value(field: str, value: str) -> str:
    """An event attribute's value; empty is allowed (it blanks nothing)."""
    return _sendable_value(field, value, limits.EVENT_ATTRIBUTE_VALUE_LENGTH)


def profile_value(field: str, value: str) -> str:
    """One value of a user or endpoint attribute: it overwrites what the profile holds, so
    an empty value or one GTM invented for an unset variable is refused, never stored."""
    if not value:
        raise FieldError(field, "value is empty", "empty_value")
    if value in INVENTED_VALUES:
        raise FieldError(
            field,
            f'value is "{value}", what GTM writes for an unset variable; leave the '
            "parameter out instead",
            "undefined_value",
        )
    return _sendable_value(field, value, limits.ENDPOINT_ATTRIBUTE_VALUE_LENGTH)


def profile_values(field: str, values: Sequence[str]) -> tuple[str, ...]:
    """An attribute's values, each checked, duplicates removed (Pinpoint keeps a set)."""
    unique = tuple(dict.fromkeys(values))
    if not unique:
        # An empty list would clear the stored attribute: never a pixel's write.
        raise FieldError(field, "list of values is empty", "empty_value")
    if len(unique) > limits.VALUES_PER_ATTRIBUTE:
        raise FieldError(
            field,
            f"{len(unique)} values; Pinpoint allows {limits.VALUES_PER_ATTRIBUTE}",
            "too_many_values",
        )
    for value in unique:
        profile_value(field, value)
    return unique


# Numbers ----------------------------------------------------------------------------------


def metric(field: str, number: float) -> float:
    if not math.isfinite(number):
        raise FieldError(field, "must be a finite number", "bad_number")
    return number


def metric_text(field: str, text: str) -> float:
    """A metric as a query string carries it: an ASCII decimal, finite."""
    if not _DECIMAL.fullmatch(text):
        raise FieldError(field, "must be a decimal number", "bad_number")
    return metric(field, float(text))


# Instants ---------------------------------------------------------------------------------


def format_instant(instant: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, the form Pinpoint shows back."""
    return instant.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hit_instant(field: str, value: str) -> datetime:
    """An instant as a pixel hit may give it: ISO 8601 with an offset or Z (a "+" that GTM
    left unencoded arrives as a space), or epoch milliseconds."""
    if _EPOCH_MILLIS.fullmatch(value):
        try:
            return datetime.fromtimestamp(int(value) / 1000, tz=UTC)
        except (OverflowError, OSError, ValueError):
            raise FieldError(field, "epoch milliseconds out of range", "bad_timestamp") from None
    try:
        instant = datetime.fromisoformat(_OFFSET_AS_SPACE.sub(r"+\1", value))
    except ValueError:
        raise FieldError(
            field,
            "must be ISO 8601 with an offset or Z, or epoch milliseconds",
            "bad_timestamp",
        ) from None
    if instant.tzinfo is None:
        raise FieldError(field, "needs a UTC offset or Z", "bad_timestamp")
    return instant


def message_instant(field: str, value: str) -> str:
    """An instant in a queue message, in the pixel's own form (`format_instant`). Another
    RFC 3339 instant with an offset is read and normalised; anything else is refused."""
    problem = "must be ISO 8601 UTC like 2026-11-28T10:00:00.000Z (or with an offset)"
    canonical = re.fullmatch(_CANONICAL_INSTANT, value) is not None
    if not canonical and not re.fullmatch(_MESSAGE_INSTANT, value):
        raise FieldError(field, problem, "bad_timestamp")
    try:
        instant = datetime.fromisoformat(value)
    except ValueError:  # a day or an hour that does not exist
        raise FieldError(field, problem, "bad_timestamp") from None
    if canonical:
        return value  # what every pixel writes: already in its final form
    try:
        return format_instant(instant)
    except OverflowError:
        raise FieldError(field, "is outside the years 1-9999 in UTC", "bad_timestamp") from None


def session_start(field: str, start: _Instant, timestamp: _Instant) -> None:
    """Both datetimes, or both in format_instant's form (which sorts as time does)."""
    if start > timestamp:
        raise FieldError(field, "is after the event's timestamp", "bad_timestamp")


# Consent ----------------------------------------------------------------------------------


def consent_state(field: str, states: Mapping[str, str]) -> dict[str, str]:
    """A consent state: known consent types, each `granted` or `denied`, at least one."""
    if not states:
        raise FieldError(field, "names no consent type", "bad_consent")
    for consent_type, state in states.items():
        if consent_type not in CONSENT_TYPES:
            raise FieldError(
                field,
                f"unknown consent type; known: {', '.join(CONSENT_TYPES)}",
                "bad_consent",
            )
        if state not in CONSENT_STATES:
            raise FieldError(field, "a consent state is granted or denied", "bad_consent")
    return dict(states)


def consent_text(field: str, value: str) -> dict[str, str]:
    """A hit's consent parameter: `type:state` pairs separated by commas, each type once
    (`ad_storage:granted,analytics_storage:denied`)."""
    states: dict[str, str] = {}
    for pair in value.split(","):
        consent_type, separator, state = pair.partition(":")
        if not separator:
            raise FieldError(field, "must be type:state pairs separated by commas", "bad_consent")
        if consent_type in states:
            raise FieldError(field, "names a consent type twice", "bad_consent")
        states[consent_type] = state
    return consent_state(field, states)


# Counts -----------------------------------------------------------------------------------


def event_keys(field: str, attributes: int, metrics: int) -> None:
    count = attributes + metrics
    if count > limits.EVENT_ATTRIBUTE_AND_METRIC_KEYS:
        raise FieldError(
            field,
            f"{count} attributes and metrics; Pinpoint allows "
            f"{limits.EVENT_ATTRIBUTE_AND_METRIC_KEYS} per event",
            "too_many_keys",
        )


def profile_size(
    fields: tuple[str, str],
    user_id: str | None,
    user_attributes: Mapping[str, Sequence[str]],
    endpoint_attributes: Mapping[str, Sequence[str]],
    endpoint_metrics: Mapping[str, float],
) -> None:
    """Pinpoint's endpoint quotas: 250 attributes, 15 KB. `fields` names what is counted
    and what is measured, in the caller's words."""
    count = len(user_attributes) + len(endpoint_attributes) + len(endpoint_metrics)
    if not (count or user_id):
        return  # most events write no profile
    if count > limits.ENDPOINT_ATTRIBUTES:
        raise FieldError(
            fields[0],
            f"{count} profile attributes; Pinpoint allows {limits.ENDPOINT_ATTRIBUTES}",
            "too_many_keys",
        )
    size = len(
        json.dumps([user_id, user_attributes, endpoint_attributes], ensure_ascii=False).encode(
            "utf-8", "surrogatepass"
        )
    )
    if size > limits.ENDPOINT_BYTES:
        raise FieldError(
            fields[1],
            f"profile update is {size} bytes; Pinpoint allows {limits.ENDPOINT_BYTES}",
            "too_large",
        )
