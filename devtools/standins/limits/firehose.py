"""Amazon Data Firehose's documented limits beyond botocore's model."""

from __future__ import annotations

from typing import Final

from devtools.standins.limits.base import KIB, MIB, Limit, Params, as_bytes


def _records(params: Params) -> list[str]:
    records = params.get("Records") or []
    sizes = [len(as_bytes(r.get("Data"))) for r in records]
    found = [
        f"Records[{i}]: {size} bytes; a record may have 1,000 KiB"
        for i, size in enumerate(sizes)
        if size > 1000 * KIB
    ]
    if sum(sizes) > 4 * MIB:
        found.append(f"Records: {sum(sizes)} bytes; a request may have 4 MiB")
    return found


def _record(params: Params) -> list[str]:
    size = len(as_bytes((params.get("Record") or {}).get("Data")))
    return [f"Record: {size} bytes; a record may have 1,000 KiB"] if size > 1000 * KIB else []


LIMITS: Final = {
    ("firehose", "PutRecordBatch"): Limit(
        "Firehose PutRecordBatch: 'Each record in the request can be as large as 1,000 KB"
        " (before base64 encoding), up to a limit of 4 MB for the entire request.'",
        _records,
    ),
    ("firehose", "PutRecord"): Limit("Firehose PutRecord: up to 1,000 KB", _record),
}
