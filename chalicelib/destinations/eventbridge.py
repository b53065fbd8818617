"""Amazon EventBridge `PutEvents`: one entry per event, so rules can route on event type.

An entry's `source` is EVENTBRIDGE_SOURCE (default `pixel-relay`), its `detail-type` the
event type, its `detail` `Event.to_record()`, and its time the event's timestamp, so a rule
such as {"source": ["pixel-relay"], "detail-type": ["purchase"]} matches purchases. Entries
are packed 10 to a call within 256 KB, and each entry's result is read. AWS's PutEvents
reference now says "the total entry size must be less than 1MB" (raised from 256 KB: AWS
Compute Blog, "serverless services now support payloads up to 1 MB"; botocore's model
carries no size at all): 256 KB per entry and per call is the older, smaller figure, which
every account and region accepts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

from chalicelib import telemetry
from chalicelib.destinations.base import (
    ERASURE_EVENT_TYPE,
    Destination,
    DestinationPlugin,
    Setting,
    Statement,
    Visitor,
    announce,
    build_each,
    build_refusal,
    call_budget_ms,
    deliver_packed,
    erasure_json,
    own_arn,
    read_answers,
    record_json,
    service_client,
)
from chalicelib.env import ConfigError, Reader
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_events.type_defs import PutEventsRequestEntryTypeDef

NAME = "eventbridge"
BUS: Final = Setting(
    "EVENTBRIDGE_BUS",
    "the event bus events are put on: a name, or the bus's ARN (another account's too)",
    default="default",
    # PutEvents takes a name or an ARN, up to 1,600 characters; a bus's name has 256.
    model=("events", "PutEvents", "Entries", "EventBusName"),
    name_model=("events", "CreateEventBus", "Name"),
)
SOURCE: Final = Setting(
    "EVENTBRIDGE_SOURCE",
    "each entry's source, for rules to match on (not aws.*)",
    default="pixel-relay",
)
MAX_ENTRIES = 10
MAX_BYTES = 256 * 1024  # for one entry, and for a whole request (AWS now allows < 1 MB)
RETRYABLE_ERRORS = frozenset({"InternalFailure", "InternalException", "ThrottlingException"})


@dataclass(frozen=True)
class Settings:
    bus: str
    source: str
    timeout_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        reader = Reader(environ)
        source = (
            reader.name(SOURCE.variable) if environ.get(SOURCE.variable) else str(SOURCE.default)
        )
        if source.lower().startswith("aws."):
            raise ConfigError("EVENTBRIDGE_SOURCE", "may not start with aws. (AWS reserves it)")
        return cls(
            bus=BUS.read(environ),
            source=source,
            timeout_seconds=reader.delivery_timeout(),
        )


def entry_for(event: Event, bus: str, source: str) -> dict[str, Any]:
    return {
        "Source": source,
        "DetailType": event.event_type,
        "Detail": record_json(event),
        "EventBusName": bus,
        "Time": datetime.fromisoformat(event.timestamp),
    }


def entry_size(entry: Mapping[str, Any]) -> int:
    """EventBridge's own measure of an entry: 14 bytes for Time, plus the UTF-8 sizes of
    Source, DetailType and Detail (and of Resources, which pixel-relay never sets)."""
    return 14 + sum(len(str(entry[k]).encode()) for k in ("Source", "DetailType", "Detail"))


class EventBridgeDestination(Destination):
    """Puts events on one EventBridge bus."""

    name = NAME
    announces_erasure = True

    def __init__(
        self, client: EventBridgeClient, bus: str, source: str, call_budget_ms: int = 0
    ) -> None:
        self._client = client
        self._bus = bus
        self._source = source
        self._call_budget_ms = call_budget_ms

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        entries, refusals = build_each(
            events, lambda event: entry_for(event, self._bus, self._source), NAME, "entry"
        )
        sizes = [0] * len(entries)
        for index, entry in enumerate(entries):
            if entry is None:
                continue
            try:
                sizes[index] = entry_size(entry)
            except Exception as error:  # a text UTF-8 cannot carry
                refusals[index] = build_refusal(NAME, "entry", error)
                continue
            if sizes[index] > MAX_BYTES:
                refusals[index] = f"entry is {sizes[index]} bytes; EventBridge allows {MAX_BYTES}"
        return deliver_packed(
            entries,
            sizes,
            refusals,
            (MAX_ENTRIES, MAX_BYTES),
            self._send,
            time_left,
            self._call_budget_ms,
            NAME,
        )

    def forget(self, visitor: Visitor, time_left: TimeLeft = None) -> Outcome:
        """One entry with detail-type `_erasure` (no event type starts with _), so a rule
        {"detail-type": ["_erasure"]} finds erasures and rules on event types never do."""
        entry: dict[str, Any] = {
            "Source": self._source,
            "DetailType": ERASURE_EVENT_TYPE,
            "Detail": erasure_json(visitor),
            "EventBusName": self._bus,
        }
        if visitor.erased_at:
            entry["Time"] = datetime.fromisoformat(visitor.erased_at)
        return announce(NAME, lambda: self._send([entry]))

    def _send(self, entries: list[dict[str, Any] | None]) -> list[Outcome]:
        telemetry.count("EventBridgeCalls")
        request: list[PutEventsRequestEntryTypeDef] = [e for e in entries if e is not None]  # type: ignore[misc]
        return read_answers(
            lambda: self._client.put_events(Entries=request),
            "PutEvents",
            "Entries",
            "entries",
            len(entries),
            _entry_outcome,
        )


def _entry_outcome(answer: Mapping[str, Any]) -> Outcome:
    code = answer.get("ErrorCode")
    if not code:
        return DELIVERED
    # The code, never the message: it may quote the entry (docs/operations.md#logs).
    reason = f"PutEvents entry failed: {code}"
    return Outcome(Verdict.RETRY if code in RETRYABLE_ERRORS else Verdict.REJECTED, reason)


class EventBridge(DestinationPlugin[Settings]):
    name = NAME
    service = "events"
    variables = (BUS, SOURCE)
    double = "devtools.localstack.doubles.eventbridge"
    # PutEvents takes 10 entries a call.
    calls_per_1000_events = 100
    call_metric = "EventBridgeCalls"

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        return Settings.from_env(environ)

    def create(self, pool: Executor | None = None) -> EventBridgeDestination:
        settings = self.settings
        client: EventBridgeClient = service_client(self.service, settings.timeout_seconds)
        return EventBridgeDestination(
            client, settings.bus, settings.source, call_budget_ms(settings.timeout_seconds)
        )

    def iam_statements(self) -> list[Statement]:
        """PutEvents on the one bus."""
        bus = self.settings.bus
        return [
            {
                "Sid": "PutBusEvents",
                "Effect": "Allow",
                "Action": ["events:PutEvents"],
                # A bus given by ARN (another account's, say) is granted exactly that bus.
                "Resource": bus
                if bus.startswith("arn:")
                else own_arn("events", f"event-bus/{bus}"),
            }
        ]

    def erasure_statements(self) -> list[Statement]:
        """The erasure entry goes by the consumer's own call, on the same bus."""
        return self.iam_statements()


PLUGIN: Final = EventBridge
