"""Kinesis Data Streams' dry run: the stream on moto's server, each shard read from its
start with GetShardIterator/GetRecords and every record handed over as delivered.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json

from chalicelib.destinations.kinesis import Kinesis
from devtools.localstack.doubles import Running, Setup

SHARDS = 2  # more than one, so records are seen to keep to their endpoint's shard


def start(setup: Setup) -> Running:
    settings = Kinesis.parse(setup.environment)
    kinesis = setup.client("kinesis")
    name = settings.stream_name
    kinesis.create_stream(StreamName=name, ShardCount=SHARDS)
    kinesis.get_waiter("stream_exists").wait(
        StreamName=name, WaiterConfig={"Delay": 0.1, "MaxAttempts": 50}
    )
    iterators = {
        shard["ShardId"]: kinesis.get_shard_iterator(
            StreamName=name, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
        )["ShardIterator"]
        for shard in kinesis.list_shards(StreamName=name)["Shards"]
    }

    def read_back() -> None:
        for shard, iterator in iterators.items():
            while True:
                answer = kinesis.get_records(ShardIterator=iterator, Limit=1000)
                iterator = answer["NextShardIterator"]
                iterators[shard] = iterator
                for record in answer["Records"]:
                    line = record["Data"].decode()
                    setup.receive_record(
                        json.loads(line),
                        {"shard": shard, "partition_key": record["PartitionKey"], "data": line},
                    )
                if not answer["Records"]:
                    break

    return Running({"AWS_ENDPOINT_URL_KINESIS": setup.moto_url}, read_back=read_back)
