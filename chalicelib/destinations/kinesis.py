"""Amazon Kinesis Data Streams `PutRecords`: each event one record, keyed by its endpoint.

The record is the shared stream record (`base.record_line`: `Event.to_record()` as one line
of JSON, newline included), so a delivery stream reading this stream writes
newline-delimited JSON to S3. The partition key is the endpoint id, so one visitor's events
land on one shard, in the order they were written.

Records are packed within the quotas AWS documents (500 records a call, 1 MiB a record and
5 MiB a call, partition key included; botocore's current model allows 10 MiB for both) and
every per-record result is read. `ErrorCode` is documented as
`ProvisionedThroughputExceededException` or `InternalFailure`, both cured by a retry; any
other code (a KMS throttle or an unusable key on an encrypted stream) names the stream's
state, not the record's, so it is retried too and an unrepaired stream ends the message on
the dead-letter queue through the redrive policy. Nothing is parked for a per-record code:
what no retry can fix about a record (over 1 MiB, a request botocore refuses) is rejected
before the call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalicelib import telemetry
from chalicelib.destinations.base import (
    Destination,
    DestinationPlugin,
    Setting,
    Statement,
    Visitor,
    announce,
    build_each,
    call_budget_ms,
    deliver_packed,
    erasure_line,
    own_arn,
    read_answers,
    record_line,
    service_client,
)
from chalicelib.env import Reader
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mypy_boto3_kinesis import KinesisClient

NAME = "kinesis"
STREAM: Final = Setting(
    "KINESIS_STREAM",
    "the data stream events are written to: its name, or its ARN (another account's too)",
    model=("kinesis", "PutRecords", "StreamName"),
    arn_model=("kinesis", "PutRecords", "StreamARN"),
)
MAX_RECORDS = 500
MIB = 1024 * 1024
MAX_RECORD_BYTES = MIB  # data and partition key together
# 5 MiB a call, counted as sent (data travels base64-encoded), with room for the JSON around.
MAX_REQUEST_BYTES = 5 * MIB - 64 * 1024
RECORD_OVERHEAD = 48  # {"Data":"","PartitionKey":""}, and a comma


@dataclass(frozen=True)
class Settings:
    stream: str  # KINESIS_STREAM: the stream's name, or its ARN
    timeout_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(stream=STREAM.read(environ), timeout_seconds=Reader(environ).delivery_timeout())

    @property
    def is_arn(self) -> bool:
        return self.stream.startswith("arn:")

    @property
    def stream_name(self) -> str:
        return self.stream.rsplit("stream/", 1)[-1] if self.is_arn else self.stream

    def target(self) -> dict[str, str]:
        """How PutRecords names the stream: StreamARN for an ARN (what AWS recommends, and
        the only way to a stream of another account), StreamName otherwise."""
        return {"StreamARN": self.stream} if self.is_arn else {"StreamName": self.stream}


@dataclass(frozen=True)
class Record:
    data: bytes
    partition_key: str


def build_record(event: Event) -> Record:
    return Record(record_line(event), event.endpoint_id)


class KinesisDestination(Destination):
    """Writes events to one Kinesis data stream with PutRecords."""

    name = NAME
    announces_erasure = True

    def __init__(self, client: KinesisClient, settings: Settings, call_budget_ms: int = 0) -> None:
        self._client = client
        self._target = settings.target()
        self._call_budget_ms = call_budget_ms

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        records, refusals = build_each(events, build_record, NAME, "record")
        sizes: list[int] = []
        for index, record in enumerate(records):
            if record is None:
                sizes.append(0)
                continue
            key_bytes = len(record.partition_key.encode())
            if len(record.data) + key_bytes > MAX_RECORD_BYTES:
                refusals[index] = (
                    f"record is {len(record.data) + key_bytes} bytes with its partition key;"
                    f" Kinesis allows {MAX_RECORD_BYTES}"
                )
            # As sent: base64 is 4 bytes for every 3 started (botocore encodes it once).
            sizes.append(4 * ((len(record.data) + 2) // 3) + key_bytes + RECORD_OVERHEAD)
        return deliver_packed(
            records,
            sizes,
            refusals,
            (MAX_RECORDS, MAX_REQUEST_BYTES),
            self._send,
            time_left,
            self._call_budget_ms,
            NAME,
        )

    def forget(self, visitor: Visitor, time_left: TimeLeft = None) -> Outcome:
        """One erasure record on the stream, keyed as the visitor's events are (by endpoint
        id, else user id): a reader of that shard meets it after their earlier events."""
        key = visitor.endpoint_id or visitor.user_id or ""
        return announce(NAME, lambda: self._send([Record(erasure_line(visitor), key)]))

    def _send(self, records: list[Record | None]) -> list[Outcome]:
        telemetry.count("KinesisCalls")
        sent = [r for r in records if r is not None]
        return read_answers(
            lambda: self._client.put_records(
                Records=[{"Data": r.data, "PartitionKey": r.partition_key} for r in sent],
                **self._target,
            ),
            "PutRecords",
            "Records",
            "records",
            len(records),
            _outcome,
        )


def _outcome(answer: Mapping[str, Any]) -> Outcome:
    code = answer.get("ErrorCode")
    if code:
        # The message of a throttled record names the account and shard: the code is enough.
        return Outcome(Verdict.RETRY, f"PutRecords {code}")
    if not answer.get("SequenceNumber"):
        return Outcome(Verdict.RETRY, "PutRecords gave the record no sequence number")
    return DELIVERED


class Kinesis(DestinationPlugin[Settings]):
    name = NAME
    service = "kinesis"
    variables = (STREAM,)
    double = "devtools.localstack.doubles.kinesis"
    probe = "devtools.ops.probes.kinesis:probe"
    # PutRecords takes 500 records a call.
    calls_per_1000_events = 2
    call_metric = "KinesisCalls"

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        return Settings.from_env(environ)

    def create(self, pool: Executor | None = None) -> KinesisDestination:
        timeout = self.settings.timeout_seconds
        client: KinesisClient = service_client(self.service, timeout)
        return KinesisDestination(client, self.settings, call_budget_ms(timeout))

    def iam_statements(self) -> list[Statement]:
        """PutRecords on the one stream. A stream encrypted with a customer managed KMS key
        also needs kms:GenerateDataKey on that key (granted in the key policy or added here
        by hand): pixel-relay cannot know the key from the stream's name."""
        stream = self.settings.stream
        resource = stream if self.settings.is_arn else own_arn("kinesis", f"stream/{stream}")
        return [
            {
                "Sid": "WriteKinesis",
                "Effect": "Allow",
                "Action": ["kinesis:PutRecords"],
                "Resource": resource,
            }
        ]

    def erasure_statements(self) -> list[Statement]:
        """The erasure record goes by the consumer's own call, on the same stream."""
        return self.iam_statements()


PLUGIN: Final = Kinesis
