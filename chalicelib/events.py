"""The normalized event, and its queue message: a versioned JSON document.

One accepted hit becomes one SQS message. The body is the contract between the pixel and the
consumer (and any tool that replays the dead-letter queue), so it is versioned and decoded
strictly: a body that does not match is a poison message, never a half-read event. Decoding
applies the pixel's own field rules (`chalicelib.rules`), so an event that reaches a
destination is one the pixel could have written. docs/message-format.md describes version 1
field by field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final, TypedDict

from chalicelib import rules
from chalicelib.rules import FieldError

MESSAGE_VERSION = 1


class MessageError(ValueError):
    """When a queue message body is not a version-1 event."""


class SessionRecord(TypedDict):
    id: str
    start: str


class _EveryEventRecord(TypedDict):
    """The fields every event record has (`EventRecord` adds the optional ones)."""

    event_id: str
    event_type: str
    endpoint_id: str
    timestamp: str
    received_at: str
    session: SessionRecord | None
    attributes: dict[str, str]
    metrics: dict[str, float]
    user_id: str | None
    user_attributes: dict[str, list[str]]
    endpoint_attributes: dict[str, list[str]]
    endpoint_metrics: dict[str, float]


class EventRecord(_EveryEventRecord, total=False):
    """An event as destinations other than Pinpoint store it, and the body of its queue
    message (with `version`, and `destinations` on a requeued copy): the one list of its
    fields, which docs/message-format.md describes and tests read. The optional fields are
    present only when the hit gave them (`total=False`, so `__optional_keys__` knows them at
    run time too: `NotRequired` under postponed annotations does not reach it on 3.11)."""

    client_timestamp: str  # the client's own time, when the pixel corrected it
    consent: dict[str, str]  # the consent state the hit carried, if any


@dataclass(frozen=True)
class Session:
    """Pinpoint's `Session`: both members are required by PutEvents."""

    id: str
    start: str


@dataclass(frozen=True)
class ProfileUpdate:
    """What a hit writes to the endpoint and its user: empty for most hits."""

    user_id: str | None = None
    user_attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    endpoint_attributes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    endpoint_metrics: Mapping[str, float] = field(default_factory=dict)

    def is_empty(self) -> bool:
        return not (
            self.user_id
            or self.user_attributes
            or self.endpoint_attributes
            or self.endpoint_metrics
        )


@dataclass(frozen=True)
class Event:
    """One accepted hit. Timestamps are ISO 8601 UTC strings with milliseconds."""

    event_id: str
    event_type: str
    endpoint_id: str
    timestamp: str
    received_at: str
    session: Session | None = None
    attributes: Mapping[str, str] = field(default_factory=dict)
    metrics: Mapping[str, float] = field(default_factory=dict)
    profile: ProfileUpdate = field(default_factory=ProfileUpdate)
    # The destinations still owed this event; None means every configured one. Set on the
    # copy that goes back to the queue when some destinations already have the event.
    destinations: tuple[str, ...] | None = None
    # The client's own `timestamp` when the pixel corrected it by `sent_at` (chalicelib/clock).
    client_timestamp: str | None = None
    # The consent state the hit carried (consent type -> granted/denied); None: it carried
    # none. Delivery reads it (chalicelib/consent.py); the pixel never refuses a hit for it.
    consent: Mapping[str, str] | None = None

    def to_record(self) -> EventRecord:
        """The event as destinations other than Pinpoint store it (docs/message-format.md)."""
        record: EventRecord = {
            "event_id": self.event_id,
            "event_type": self.event_type,
            "endpoint_id": self.endpoint_id,
            "timestamp": self.timestamp,
            "received_at": self.received_at,
            "session": (
                None
                if self.session is None
                else {"id": self.session.id, "start": self.session.start}
            ),
            "attributes": dict(self.attributes),
            "metrics": dict(self.metrics),
            "user_id": self.profile.user_id,
            "user_attributes": {k: list(v) for k, v in self.profile.user_attributes.items()},
            "endpoint_attributes": {
                k: list(v) for k, v in self.profile.endpoint_attributes.items()
            },
            "endpoint_metrics": dict(self.profile.endpoint_metrics),
        }
        # Optional fields, present only when the hit gave them (docs/message-format.md).
        if self.client_timestamp is not None:
            record["client_timestamp"] = self.client_timestamp
        if self.consent is not None:
            record["consent"] = dict(self.consent)
        return record

    def to_message(self) -> str:
        """The SQS message body (version 1)."""
        document: dict[str, Any] = {"version": MESSAGE_VERSION, **self.to_record()}
        if self.destinations is not None:
            document["destinations"] = list(self.destinations)
        return json.dumps(document, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_message(cls, body: str) -> Event:
        """Decode a message body, or raise MessageError saying what is wrong with it."""
        try:
            return cls._decode(body)
        except MessageError:
            raise
        except FieldError as error:
            # "<field> <rule>", e.g. "timestamp must be ISO 8601 UTC like ...": the field is
            # the message's, never a key or value it carries (the reason reaches logs).
            raise MessageError(f"{error.field} {error.rule}") from None
        except (ValueError, TypeError, OverflowError, RecursionError) as error:
            # Numbers too large for a float, nesting too deep, strings JSON cannot hold:
            # still a poison message with a reason, never an error that fails the batch.
            raise MessageError(f"body is not a readable event ({type(error).__name__})") from None

    @classmethod
    def _decode(cls, body: str) -> Event:
        try:
            document = json.loads(body)
        except ValueError:
            raise MessageError("body is not JSON") from None
        if not isinstance(document, dict):
            raise MessageError("body is not a JSON object")
        version = document.get("version")
        if type(version) is not int or version != MESSAGE_VERSION:
            raise MessageError(f"unsupported message version {_version_text(version)}")
        reader = _DocumentReader(document)
        event_id = rules.identifier("event_id", reader.text("event_id"))
        event_type = rules.event_type("event_type", reader.text("event_type"))
        endpoint_id = rules.identifier("endpoint_id", reader.text("endpoint_id"))
        timestamp = rules.message_instant("timestamp", reader.text("timestamp"))
        received_at = rules.message_instant("received_at", reader.text("received_at"))
        client_timestamp = reader.optional_text("client_timestamp")
        if client_timestamp is not None:
            client_timestamp = rules.message_instant("client_timestamp", client_timestamp)
        consent = reader.optional_consent("consent")
        session: Session | None = None
        session_document = reader.optional_object("session")
        if session_document is not None:
            session_reader = _DocumentReader(session_document, "session.")
            start = rules.message_instant("session.start", session_reader.text("start"))
            rules.session_start("session.start", start, timestamp)
            session = Session(
                id=rules.identifier("session.id", session_reader.text("id")), start=start
            )
        attributes = reader.text_map("attributes")
        metrics = reader.number_map("metrics")
        rules.event_keys("attributes/metrics", len(attributes), len(metrics))
        user_id = reader.optional_text("user_id")
        if user_id is not None:
            rules.identifier("user_id", user_id)
        user_attributes = reader.list_map("user_attributes")
        endpoint_attributes = reader.list_map("endpoint_attributes")
        endpoint_metrics = reader.number_map("endpoint_metrics")
        rules.profile_size(
            (
                "user_attributes/endpoint_attributes/endpoint_metrics",
                "user_id/user_attributes/endpoint_attributes",
            ),
            user_id,
            user_attributes,
            endpoint_attributes,
            endpoint_metrics,
        )
        return cls(
            event_id=event_id,
            event_type=event_type,
            endpoint_id=endpoint_id,
            timestamp=timestamp,
            received_at=received_at,
            session=session,
            attributes=attributes,
            metrics=metrics,
            # Most hits write no profile: they share one empty ProfileUpdate.
            profile=(
                _NO_PROFILE
                if user_id is None
                and not user_attributes
                and not endpoint_attributes
                and not endpoint_metrics
                else ProfileUpdate(user_id, user_attributes, endpoint_attributes, endpoint_metrics)
            ),
            destinations=reader.optional_names("destinations"),
            client_timestamp=client_timestamp,
            consent=consent,
        )


def _version_text(version: object) -> str:
    """A refused `version` as a reason names it: a small whole number is a version, shown as
    it is; anything else is shown by its JSON type only, since the reason reaches logs and
    dead-letter attributes, where no value a visitor could have sent belongs."""
    if type(version) is int and 0 <= version < 100:
        return str(version)
    kind = {
        type(None): "null",
        bool: "a boolean",
        int: "a number",
        float: "a number",
        str: "a string",
        list: "an array",
        dict: "an object",
    }.get(type(version), "a value")
    return f"({kind}; this consumer reads {MESSAGE_VERSION})"


_NO_PROFILE: Final = ProfileUpdate()
_NUMBER: Final = (int, float)  # a tuple: `int | float` would build a new union every call


class _DocumentReader:
    """Strict typed reads from a decoded message, naming the field that is wrong. Keys
    and values of the maps meet the same rules as the pixel's parameters."""

    def __init__(self, document: Mapping[str, Any], prefix: str = "") -> None:
        self._document = document
        self._prefix = prefix

    def _fail(self, key: str, problem: str) -> MessageError:
        return MessageError(f"{self._prefix}{key} {problem}")

    def text(self, key: str) -> str:
        value = self._document.get(key)
        if not isinstance(value, str) or not value:
            raise self._fail(key, "must be a non-empty string")
        return value

    def optional_text(self, key: str) -> str | None:
        if self._document.get(key) is None:
            return None
        return self.text(key)

    def optional_object(self, key: str) -> Mapping[str, Any] | None:
        value = self._document.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            raise self._fail(key, "must be an object or null")
        return value

    def _object(self, key: str) -> Mapping[str, Any]:
        value = self._document.get(key, {})
        if not isinstance(value, dict):
            raise self._fail(key, "must be an object")
        for name in value:
            rules.attribute_key(self._prefix + key, name)
        return value

    def text_map(self, key: str) -> dict[str, str]:
        mapping = self._object(key)
        for value in mapping.values():
            if not isinstance(value, str):
                raise self._fail(key, "values must be strings")
            rules.event_attribute_value(self._prefix + key, value)
        return dict(mapping)

    def number_map(self, key: str) -> dict[str, float]:
        mapping = self._object(key)
        if not mapping:
            return {}
        numbers: dict[str, float] = {}
        for name, value in mapping.items():
            if isinstance(value, bool) or not isinstance(value, _NUMBER):
                raise self._fail(key, "values must be numbers")
            try:
                number = float(value)
            except OverflowError:  # an integer beyond a double's range
                raise self._fail(key, "values must be finite") from None
            if not math.isfinite(number):
                raise self._fail(key, "values must be finite")
            numbers[name] = number
        return numbers

    def optional_consent(self, key: str) -> dict[str, str] | None:
        value = self._document.get(key)
        if value is None:
            return None
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            raise self._fail(key, "must be an object of consent type -> granted/denied")
        return rules.consent_state(self._prefix + key, value)

    def optional_names(self, key: str) -> tuple[str, ...] | None:
        value = self._document.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
            raise self._fail(key, "must be a list of destination names or absent")
        return tuple(value)

    def list_map(self, key: str) -> dict[str, tuple[str, ...]]:
        mapping = self._object(key)
        if not mapping:
            return {}
        lists: dict[str, tuple[str, ...]] = {}
        for name, values in mapping.items():
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise self._fail(key, "values must be lists of strings")
            # Duplicates are dropped, as the pixel drops them (Pinpoint keeps a set).
            lists[name] = rules.profile_values(self._prefix + key, values)
        return lists
