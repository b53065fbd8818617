"""Kinesis Data Streams' documented limits beyond botocore's model."""

from __future__ import annotations

from typing import Final

from devtools.standins.limits.base import MIB, Limit, Params, as_bytes


def _records(params: Params) -> list[str]:
    records = params.get("Records") or []
    # "The record size limit applies to the total size of the partition key and data blob."
    sizes = [
        len(as_bytes(r.get("Data"))) + len(str(r.get("PartitionKey", "")).encode()) for r in records
    ]
    found = [
        f"Records[{i}]: {size} bytes with its partition key; a record may have 10 MiB"
        for i, size in enumerate(sizes)
        if size > 10 * MIB
    ]
    if sum(sizes) > 10 * MIB:
        found.append(f"Records: {sum(sizes)} bytes; a request may have 10 MiB")
    return found


LIMITS: Final = {
    ("kinesis", "PutRecords"): Limit(
        "Kinesis PutRecords: 'Each record in the request can be as large as 10 MiB, up to a"
        " limit of 10 MiB for the entire request, including partition keys.'",
        _records,
    ),
}
