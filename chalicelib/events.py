"""The normalized event, and its queue message: a versioned JSON document.

One accepted hit becomes one SQS message. The body is the contract between the pixel and the
consumer (and any tool that replays the dead-letter queue), so it is versioned and decoded
strictly: a body that does not match is a poison message, never a half-read event.
docs/message-format.md describes version 1 field by field.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

MESSAGE_VERSION = 1


class MessageError(ValueError):
    """When a queue message body is not a version-1 event."""


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

    def to_record(self) -> dict[str, Any]:
        """The event as destinations other than Pinpoint store it (docs/message-format.md)."""
        return {
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
            raise MessageError(f"unsupported message version {version!r}")
        reader = _DocumentReader(document)
        session = reader.optional_object("session")
        session_reader = None if session is None else _DocumentReader(session, "session.")
        user_id = reader.optional_text("user_id")
        user_attributes = reader.list_map("user_attributes")
        endpoint_attributes = reader.list_map("endpoint_attributes")
        endpoint_metrics = reader.number_map("endpoint_metrics")
        return cls(
            event_id=reader.text("event_id"),
            event_type=reader.text("event_type"),
            endpoint_id=reader.text("endpoint_id"),
            timestamp=reader.text("timestamp"),
            received_at=reader.text("received_at"),
            session=(
                None
                if session_reader is None
                else Session(id=session_reader.text("id"), start=session_reader.text("start"))
            ),
            attributes=reader.text_map("attributes"),
            metrics=reader.number_map("metrics"),
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
        )


_NO_PROFILE: Final = ProfileUpdate()
_NUMBER: Final = (int, float)  # a tuple: `int | float` would build a new union every call


class _DocumentReader:
    """Strict typed reads from a decoded message, naming the field that is wrong."""

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
        return value

    def text_map(self, key: str) -> dict[str, str]:
        mapping = self._object(key)
        for value in mapping.values():
            if not isinstance(value, str):
                raise self._fail(key, "values must be strings")
        return dict(mapping)

    def number_map(self, key: str) -> dict[str, float]:
        mapping = self._object(key)
        if not mapping:
            return {}
        numbers: dict[str, float] = {}
        for name, value in mapping.items():
            if isinstance(value, bool) or not isinstance(value, _NUMBER):
                raise self._fail(key, "values must be numbers")
            if not math.isfinite(value):
                raise self._fail(key, "values must be finite")
            numbers[name] = float(value)
            if not math.isfinite(numbers[name]):
                raise self._fail(key, "values must be finite")
        return numbers

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
            lists[name] = tuple(values)
        return lists
