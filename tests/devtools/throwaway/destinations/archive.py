"""A throwaway AWS destination: each batch written as one S3 object of JSON lines."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Final

from chalicelib.destinations.base import (
    Destination,
    DestinationPlugin,
    Setting,
    Statement,
    client_error_outcome,
    record_line,
    service_client,
)
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft

BUCKET: Final = Setting("ARCHIVE_BUCKET", "the S3 bucket each batch is written to")


@dataclass(frozen=True)
class Settings:
    bucket: str


class ArchiveDestination(Destination):
    name = "archive"

    def __init__(self, client: Any, bucket: str) -> None:
        self._client = client
        self._bucket = bucket

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        if not events:
            return []
        body = b"".join(record_line(event) for event in events)
        try:
            self._client.put_object(Bucket=self._bucket, Key=f"{uuid.uuid4()}.jsonl", Body=body)
        except Exception as error:
            return [client_error_outcome(error, "PutObject")] * len(events)
        return [DELIVERED] * len(events)


class Archive(DestinationPlugin[Settings]):
    name = "archive"
    service = "s3"
    variables = (BUCKET,)
    double = "tests.devtools.throwaway.archive_double"
    resources = "tests.devtools.throwaway.archive_double:resources"
    calls_per_1000_events = 2  # one object a batch, batches of 500

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        return Settings(BUCKET.read(environ))

    def create(self, pool: Executor | None = None) -> ArchiveDestination:
        return ArchiveDestination(service_client("s3", 10), self.settings.bucket)

    def iam_statements(self) -> list[Statement]:
        return [
            {
                "Sid": "WriteArchive",
                "Effect": "Allow",
                "Action": ["s3:PutObject"],
                # S3 ARNs name no region or account.
                "Resource": f"arn:${{AWS::Partition}}:s3:::{self.settings.bucket}/*",
            }
        ]


PLUGIN: Final = Archive
