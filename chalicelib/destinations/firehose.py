"""Amazon Data Firehose `PutRecordBatch`: newline-delimited JSON records, ready for S3/Athena.

Each event is one record: `Event.to_record()` as one line of JSON (docs/coming-from-pinpoint.md
lists the fields). Records are packed up to Firehose's limits (500 records, 4 MB a call,
1,000 KiB a record) and every per-record result is read: Firehose's per-record errors
(ServiceUnavailableException, InternalFailure) are all transient, so those records are retried.
"""

from __future__ import annotations

import base64
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

    from mypy_boto3_firehose import FirehoseClient

NAME = "firehose"
STREAM: Final = Setting(
    "FIREHOSE_STREAM",
    "the delivery stream events are written to",
    model=("firehose", "PutRecordBatch", "DeliveryStreamName"),
)
MAX_RECORDS = 500
MAX_RECORD_BYTES = 1000 * 1024
# 4 MB a request, counted as sent: record data travels base64-encoded in the JSON body.
MAX_REQUEST_BYTES = 4_000_000 - 64 * 1024


@dataclass(frozen=True)
class Settings:
    stream: str
    timeout_seconds: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        return cls(stream=STREAM.read(environ), timeout_seconds=Reader(environ).delivery_timeout())


class FirehoseDestination(Destination):
    """Writes events to one Firehose stream with PutRecordBatch."""

    name = NAME
    announces_erasure = True

    def __init__(self, client: FirehoseClient, stream: str, call_budget_ms: int = 0) -> None:
        self._client = client
        self._stream = stream
        self._call_budget_ms = call_budget_ms

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        data, refusals = build_each(events, record_line, NAME, "record")
        for index, record in enumerate(data):
            if record is not None and len(record) > MAX_RECORD_BYTES:
                refusals[index] = (
                    f"record is {len(record)} bytes; Firehose allows {MAX_RECORD_BYTES}"
                )
        return deliver_packed(
            data,
            # Counted as sent: record data travels base64-encoded in the request body.
            [0 if record is None else len(base64.b64encode(record)) + 16 for record in data],
            refusals,
            (MAX_RECORDS, MAX_REQUEST_BYTES),
            self._send,
            time_left,
            self._call_budget_ms,
            NAME,
        )

    def forget(self, visitor: Visitor, time_left: TimeLeft = None) -> Outcome:
        """One erasure record among the events: what Firehose already wrote (to S3, say)
        stays there until a job downstream acts on the record (docs/erasure.md)."""
        return announce(NAME, lambda: self._send([erasure_line(visitor)]))

    def _send(self, records: list[bytes | None]) -> list[Outcome]:
        telemetry.count("FirehoseCalls")
        return read_answers(
            lambda: self._client.put_record_batch(
                DeliveryStreamName=self._stream,
                Records=[{"Data": r} for r in records if r is not None],
            ),
            "PutRecordBatch",
            "RequestResponses",
            "records",
            len(records),
            _record_outcome,
        )


def _record_outcome(answer: Mapping[str, Any]) -> Outcome:
    if not answer.get("ErrorCode"):
        return DELIVERED
    # The code, never the message (docs/operations.md#logs).
    return Outcome(Verdict.RETRY, f"PutRecordBatch record failed: {answer['ErrorCode']}")


class Firehose(DestinationPlugin[Settings]):
    name = NAME
    service = "firehose"
    variables = (STREAM,)
    double = "devtools.localstack.doubles.firehose"
    # PutRecordBatch takes 500 records a call.
    calls_per_1000_events = 2
    call_metric = "FirehoseCalls"

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        return Settings.from_env(environ)

    def create(self, pool: Executor | None = None) -> FirehoseDestination:
        timeout = self.settings.timeout_seconds
        client: FirehoseClient = service_client(self.service, timeout)
        return FirehoseDestination(client, self.settings.stream, call_budget_ms(timeout))

    def iam_statements(self) -> list[Statement]:
        """PutRecordBatch on the one delivery stream."""
        return [
            {
                "Sid": "WriteFirehose",
                "Effect": "Allow",
                "Action": ["firehose:PutRecordBatch"],
                "Resource": own_arn("firehose", f"deliverystream/{self.settings.stream}"),
            }
        ]

    def erasure_statements(self) -> list[Statement]:
        """The erasure record goes by the consumer's own call, on the same stream."""
        return self.iam_statements()


PLUGIN: Final = Firehose
