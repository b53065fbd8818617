"""How the dry run stands in for each destination and reads back what it received.

A destination's plug-in names its double (`DestinationPlugin.double`, a module path): the
doubles of this package, or any module elsewhere. A double exports `start(setup) ->
Running`, and `PORT` if it serves a stand-in of its own (the local stack then offers
`--<option>-port`). It reads its destination's settings from `setup.environment` with that
destination's own plug-in, and either hands over what its stand-in accepts as it arrives
(`setup.receive`), or returns a `read_back` the dry run polls.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, cast

import boto3

from chalicelib.destinations import registry
from chalicelib.destinations.base import ERASURE_EVENT_TYPE
from devtools import hooks
from devtools.offline import REGION

# endpoint id, event id, the event in Pinpoint's shape (what the demo page shows), and what
# the destination received, as it received it.
Receive = Callable[[str, str, dict[str, Any], Any], None]


def pinpoint_shape(record: Mapping[str, Any]) -> dict[str, Any]:
    """A pixel-relay record (Event.to_record()) as the Pinpoint Event the demo page shows."""
    event: dict[str, Any] = {"EventType": record["event_type"], "Timestamp": record["timestamp"]}
    if record.get("attributes"):
        event["Attributes"] = record["attributes"]
    if record.get("metrics"):
        event["Metrics"] = record["metrics"]
    if record.get("session"):
        session = record["session"]
        event["Session"] = {"Id": session["id"], "StartTimestamp": session["start"]}
    return event


@dataclass(frozen=True)
class StandInPort:
    """A stand-in's own port: `--<option>-port` and PIXEL_RELAY_<OPTION>_PORT."""

    option: str
    default: int


@dataclass(frozen=True)
class Setup:
    """What a double is given to start."""

    environment: Mapping[str, str]  # the stage's: the double parses its own settings
    host: str
    port: int  # for its stand-in, if it has one; 0 picks a free port
    moto_url: str  # moto's server, for destinations moto implements
    receive: Receive

    def receive_record(self, record: Mapping[str, Any], raw: Any) -> None:
        """A delivered pixel-relay record (Event.to_record()), as read back; or an erasure
        record (`make ops ARGS="forget ..."`), which has no event id and shows as an event
        of type `_erasure` at its time."""
        if record.get("event_type") == ERASURE_EVENT_TYPE:
            event = {"EventType": ERASURE_EVENT_TYPE, "Timestamp": record.get("erased_at") or ""}
            who = record.get("endpoint_id") or record.get("user_id") or ""
            self.receive(who, "", event, raw)
            return
        self.receive(record["endpoint_id"], record["event_id"], pinpoint_shape(record), raw)

    def bucket_reader(self, s3: Any, bucket: str) -> Callable[[], None]:
        """A `read_back` for a destination that lands in an S3 bucket on moto: each object
        not read before, one record a line (JSON Lines)."""
        seen: set[str] = set()

        def read_back() -> None:
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                if item["Key"] in seen:
                    continue
                seen.add(item["Key"])
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
                for line in body.splitlines():
                    self.receive_record(json.loads(line), line)

        return read_back

    def client(self, service: str, endpoint_url: str | None = None) -> Any:
        """A boto3 client on moto's server (or `endpoint_url`), with fake credentials."""
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint_url or self.moto_url,
            region_name=REGION,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )


class StandIn(Protocol):
    """A local server speaking the destination's API (`devtools.standins`)."""

    def stop(self) -> None: ...

    def fail_next_requests(self, status: int, count: int = 1) -> None: ...


@dataclass(frozen=True)
class Running:
    """A started double."""

    environment: dict[str, str]  # the endpoint variables the app's client needs
    read_back: Callable[[], None] | None = None  # polled for what arrived since the last poll
    standin: StandIn | None = None  # stopped with the dry run; fails on an outage


class Double(Protocol):
    """The module's interface (`PORT` aside, which is optional)."""

    def start(self, setup: Setup) -> Running: ...


def double(destination: str) -> Double:
    """The double `destination`'s plug-in names, or an error saying which module to add."""
    return cast(Double, hooks.module(registry.plugin(destination).double, destination))


def port(destination: str) -> StandInPort | None:
    found: StandInPort | None = getattr(double(destination), "PORT", None)
    return found


def stand_in_ports() -> dict[str, int]:
    """Every stand-in's port option and default, in the registry's order (this imports
    every destination's plug-in: the local stack's start, not the Lambda's)."""
    ports: dict[str, int] = {}
    for destination in registry.known():
        option = port(destination)
        if option is not None:
            ports[option.option] = option.default
    return ports
