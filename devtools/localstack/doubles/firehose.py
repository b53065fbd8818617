"""Firehose's dry run: a delivery stream on moto's server writing to an S3 bucket there,
whose new objects are read back line by line.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

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
    return Running(
        {"AWS_ENDPOINT_URL_FIREHOSE": setup.moto_url}, read_back=setup.bucket_reader(s3, bucket)
    )
