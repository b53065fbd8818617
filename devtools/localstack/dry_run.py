"""The local stack's dry run: a local stand-in for every configured destination, and one
JSON Lines record of what each received.

- pinpoint: `devtools.standins.pinpoint`, validating each request with botocore's model;
- firehose: a delivery stream on moto's server writing to an S3 bucket there, read back;
- eventbridge: a bus on moto's server with a rule sending everything to an SQS queue, read back;
- customer-profiles: `devtools.standins.customer_profiles`, with the object type set up.

Each delivered event becomes one line in the log and one line on the console, and is offered
to the demo page in Pinpoint's event shape whatever the destination.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import boto3

from devtools.standins.pinpoint import AcceptedEvent, PinpointStandIn

Say = Callable[[str], None]


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


class DryRun:
    """Starts the stand-ins for `destinations` and records what they receive."""

    def __init__(
        self,
        destinations: tuple[str, ...],
        stage_env: Mapping[str, str],
        log_path: Path,
        say: Say,
        moto_url: str,
        host: str,
        pinpoint_port: int,
        profiles_port: int = 0,
    ) -> None:
        self.destinations = destinations
        self._env = stage_env
        self._say = say
        self._moto_url = moto_url
        self._host = host
        self._pinpoint_port = pinpoint_port
        self._profiles_port = profiles_port
        self._profiles: Any = None
        log_path.parent.mkdir(parents=True, exist_ok=True)
        self.log_path = log_path
        self._log: IO[str] = log_path.open("w", encoding="utf-8")
        self._lock = threading.Lock()
        self._delivered: list[dict[str, Any]] = []
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pinpoint: PinpointStandIn | None = None

    def start(self) -> dict[str, str]:
        """Start everything; return the endpoint variables the app's clients need."""
        endpoints: dict[str, str] = {}
        if "pinpoint" in self.destinations:
            self._pinpoint = PinpointStandIn(
                [self._env["PINPOINT_APPLICATION_ID"]],
                self._host,
                self._pinpoint_port,
                on_accept=self._from_pinpoint,
                validate_model=True,
            ).start()
            endpoints["AWS_ENDPOINT_URL_PINPOINT"] = self._pinpoint.url
        if "firehose" in self.destinations:
            self._watch(self._firehose_lines())
            endpoints["AWS_ENDPOINT_URL_FIREHOSE"] = self._moto_url
        if "eventbridge" in self.destinations:
            self._watch(self._bus_events())
            endpoints["AWS_ENDPOINT_URL_EVENTBRIDGE"] = self._moto_url
        if "customer-profiles" in self.destinations:
            endpoints["AWS_ENDPOINT_URL_CUSTOMER_PROFILES"] = self._start_profiles()
        return endpoints

    def _start_profiles(self) -> str:
        """The stand-in, with the object type created as `make profiles-setup` would."""
        from chalicelib.destinations import customer_profiles
        from devtools.deploy.profiles_setup import ensure_object_type
        from devtools.standins.customer_profiles import AcceptedObject, ProfilesStandIn

        def accepted(item: AcceptedObject) -> None:
            self._from_record("customer-profiles", item.object, item.object)

        settings = customer_profiles.Settings.from_env(self._env)
        standin = ProfilesStandIn(
            [settings.domain], self._host, self._profiles_port, on_accept=accepted
        ).start()
        self._profiles = standin
        ensure_object_type(self._client("customer-profiles", standin.url), settings)
        return standin.url

    def stop(self) -> None:
        self._stopping.set()
        for thread in self._threads:
            thread.join(timeout=5)
        for standin in (self._pinpoint, self._profiles):
            if standin is not None:
                standin.stop()
        self._log.close()

    def delivered(self, destination: str | None = None) -> list[dict[str, Any]]:
        """What arrived so far, at one destination or at all of them, in order."""
        with self._lock:
            return [
                record
                for record in self._delivered
                if destination is None or record["destination"] == destination
            ]

    @property
    def pinpoint(self) -> PinpointStandIn | None:
        """The Pinpoint stand-in, once started (tests plan faults on it)."""
        return self._pinpoint

    @property
    def profiles(self) -> Any:
        """The Customer Profiles stand-in, once started (tests plan faults on it)."""
        return self._profiles

    def simulate_outage(self, calls: int) -> None:
        """The next `calls` calls fail at the stand-in destinations (moto's cannot)."""
        if self._pinpoint is not None:
            self._pinpoint.fail_next_requests(500, calls)
        if self._profiles is not None:
            self._profiles.fail_next_requests(500, calls)

    # Recording ------------------------------------------------------------------------------

    def _record(
        self, destination: str, endpoint_id: str, event_id: str, event: dict[str, Any], raw: Any
    ) -> None:
        line = {
            "destination": destination,
            "delivered_at": datetime.now(UTC).isoformat(),
            "endpoint_id": endpoint_id,
            "event_id": event_id,
            "event": event,
            "received": raw,
        }
        with self._lock:
            self._log.write(json.dumps(line, sort_keys=True) + "\n")
            self._log.flush()
            self._delivered.append({**line, "endpoint": {}})
        self._say(
            f"{destination} <- {event.get('EventType')} endpoint={endpoint_id}"
            f" attrs={json.dumps(event.get('Attributes', {}), sort_keys=True)}"
            f" metrics={json.dumps(event.get('Metrics', {}), sort_keys=True)}"
            f" at={event.get('Timestamp')}"
        )

    def _from_pinpoint(self, accepted: AcceptedEvent) -> None:
        self._record(
            "pinpoint", accepted.endpoint_id, accepted.event_id, accepted.event, accepted.endpoint
        )

    def _from_record(self, destination: str, record: Mapping[str, Any], raw: Any) -> None:
        self._record(
            destination, record["endpoint_id"], record["event_id"], pinpoint_shape(record), raw
        )

    # moto-backed destinations ---------------------------------------------------------------

    def _client(self, service: str, endpoint_url: str | None = None) -> Any:
        return boto3.client(  # type: ignore[call-overload]
            service,
            endpoint_url=endpoint_url or self._moto_url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )

    def _watch(self, poll: Callable[[], None]) -> None:
        def loop() -> None:
            while not self._stopping.wait(0.5):
                try:
                    poll()
                except Exception as error:  # a dry run reports, it never stops the stack
                    self._say(f"dry run: reading back failed: {error}")

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self._threads.append(thread)

    def _firehose_lines(self) -> Callable[[], None]:
        stream = self._env["FIREHOSE_STREAM"]
        bucket = f"{stream.lower()}-dry-run"[:63]
        s3 = self._client("s3")
        s3.create_bucket(Bucket=bucket)
        self._client("firehose").create_delivery_stream(
            DeliveryStreamName=stream,
            ExtendedS3DestinationConfiguration={
                "BucketARN": f"arn:aws:s3:::{bucket}",
                "RoleARN": "arn:aws:iam::123456789012:role/firehose-dry-run",
            },
        )
        seen: set[str] = set()

        def poll() -> None:
            for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
                if item["Key"] in seen:
                    continue
                seen.add(item["Key"])
                body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
                for line in body.splitlines():
                    self._from_record("firehose", json.loads(line), line)

        return poll

    def _bus_events(self) -> Callable[[], None]:
        bus = self._env.get("EVENTBRIDGE_BUS") or "default"
        source = self._env.get("EVENTBRIDGE_SOURCE") or "pixel-relay"
        sqs, events = self._client("sqs"), self._client("events")
        queue_url = sqs.create_queue(QueueName=f"{bus}-dry-run-target")["QueueUrl"]
        queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
            "Attributes"
        ]["QueueArn"]
        if bus != "default":
            events.create_event_bus(Name=bus)
        events.put_rule(
            Name="pixel-relay-dry-run",
            EventBusName=bus,
            EventPattern=json.dumps({"source": [source]}),
        )
        events.put_targets(
            Rule="pixel-relay-dry-run",
            EventBusName=bus,
            Targets=[{"Id": "dry-run", "Arn": queue_arn}],
        )

        def poll() -> None:
            # Until the target queue is empty: ten a poll fell behind any real load.
            while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
                "Messages", []
            ):
                for message in messages:
                    envelope = json.loads(message["Body"])
                    self._from_record("eventbridge", envelope["detail"], envelope)
                    sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

        return poll
