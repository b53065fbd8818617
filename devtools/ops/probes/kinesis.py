"""The kinesis destination's `ops check` probe: the stream read from shortly before the test
hit was sent (`GetShardIterator` `AT_TIMESTAMP`, then `GetRecords` onward from where the last
poll stopped), each record a line of JSON carrying the event id. Records stay on the stream
until it expires them: nothing to clean up. The operator needs `kinesis:ListShards`,
`kinesis:GetShardIterator` and `kinesis:GetRecords` on the stream.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any, Final

from devtools.ops.probes.base import ClientFactory, TestEvent

# Read from this long before the hit was sent: clocks differ, and Kinesis stamps a record
# with its own arrival time.
CLOCK_MARGIN: Final = timedelta(seconds=60)
# GetRecords calls per shard and poll: a busy stream is read across several polls.
CALLS_PER_POLL: Final = 10


class KinesisProbe:
    def __init__(self, kinesis: Any, target: Mapping[str, str]) -> None:
        self._kinesis = kinesis
        self._target = dict(target)  # StreamName or StreamARN, as the destination sends
        self._iterators: dict[str, str | None] = {}

    def _start(self, test: TestEvent) -> None:
        shards: list[str] = []
        token: dict[str, str] = {}
        while True:
            page = self._kinesis.list_shards(**(token or self._target))
            shards += [str(shard["ShardId"]) for shard in page.get("Shards", [])]
            if not page.get("NextToken"):
                break
            token = {"NextToken": page["NextToken"]}
        for shard in shards:
            self._iterators[shard] = self._kinesis.get_shard_iterator(
                **self._target,
                ShardId=shard,
                ShardIteratorType="AT_TIMESTAMP",
                Timestamp=test.sent_at - CLOCK_MARGIN,
            )["ShardIterator"]

    def delivered(self, test: TestEvent) -> str | None:
        if not self._iterators:
            self._start(test)
        for shard, iterator in self._iterators.items():
            for _ in range(CALLS_PER_POLL):
                if iterator is None:  # a closed shard, read to its end
                    break
                page = self._kinesis.get_records(ShardIterator=iterator, Limit=1000)
                iterator = page.get("NextShardIterator")
                self._iterators[shard] = iterator
                for record in page.get("Records", []):
                    if _event_id(record.get("Data", b"")) == test.event_id:
                        return (
                            f"record {record.get('SequenceNumber')} on shard {shard} of"
                            f" {next(iter(self._target.values()))}"
                        )
                if not page.get("Records") or page.get("MillisBehindLatest", 0) == 0:
                    break
        return None

    def cleanup(self, test: TestEvent) -> None:
        """Nothing: a stream's records cannot be deleted; they expire with its retention."""


def _event_id(data: bytes) -> str | None:
    try:
        record = json.loads(data)
    except ValueError:
        return None
    return str(record.get("event_id")) if isinstance(record, dict) else None


def probe(environment: Mapping[str, str], client: ClientFactory) -> KinesisProbe:
    """The plug-in's `probe` hook: its stream, read with `client`'s kinesis client."""
    from chalicelib.destinations.kinesis import Kinesis

    return KinesisProbe(client("kinesis"), Kinesis.parse(environment).target())
