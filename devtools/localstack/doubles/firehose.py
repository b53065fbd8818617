"""Firehose's dry run: a delivery stream on moto's server writing to an S3 bucket there,
whose new objects are read back line by line.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json

from chalicelib.destinations.firehose import Firehose
from devtools.localstack.doubles import Running, Setup


def start(setup: Setup) -> Running:
    settings = Firehose.parse(setup.environment)
    bucket = f"{settings.stream.lower()}-dry-run"[:63]
    s3 = setup.client("s3")
    s3.create_bucket(Bucket=bucket)
    setup.client("firehose").create_delivery_stream(
        DeliveryStreamName=settings.stream,
        ExtendedS3DestinationConfiguration={
            "BucketARN": f"arn:aws:s3:::{bucket}",
            "RoleARN": "arn:aws:iam::123456789012:role/firehose-dry-run",
        },
    )
    seen: set[str] = set()

    def read_back() -> None:
        for item in s3.list_objects_v2(Bucket=bucket).get("Contents", []):
            if item["Key"] in seen:
                continue
            seen.add(item["Key"])
            body = s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read().decode()
            for line in body.splitlines():
                setup.receive_record(json.loads(line), line)

    return Running({"AWS_ENDPOINT_URL_FIREHOSE": setup.moto_url}, read_back=read_back)
