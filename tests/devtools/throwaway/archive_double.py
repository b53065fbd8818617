"""The archive destination's double: its bucket on moto's server, each new object read back
line by line; and its deploy-time CloudFormation (`resources`, the plug-in's hook).

It reads ARCHIVE_BUCKET itself rather than through the plug-in: `make bench` runs a double
in a process of its own, where the throwaway plug-in is not on chalicelib's path."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from devtools.localstack.doubles import Running, Setup


def start(setup: Setup) -> Running:
    bucket = setup.environment["ARCHIVE_BUCKET"]
    s3 = setup.client("s3")
    s3.create_bucket(Bucket=bucket)
    return Running(
        {"AWS_ENDPOINT_URL_S3": setup.moto_url}, read_back=setup.bucket_reader(s3, bucket)
    )


def resources(environment: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The bucket, kept when the stack goes (it holds data)."""
    return {
        "Resources": {
            "ArchiveBucket": {
                "Type": "AWS::S3::Bucket",
                "DeletionPolicy": "Retain",
                "UpdateReplacePolicy": "Retain",
                "Properties": {"BucketName": environment["ARCHIVE_BUCKET"]},
            }
        }
    }
