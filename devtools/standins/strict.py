"""Every rule AWS states for a request: the whole of botocore's model, then AWS's documented
limits that the model does not carry. The check the stand-ins and the moto proxy
(`devtools.standins.moto_proxy`) apply to every request, so that nothing a test or `make dev`
sends is accepted locally and refused by AWS.

botocore's own `ParamValidator` checks required members, types, unions and minimums only. On
top of it (`model_problems`):

- strings: the maximum length (counted in UTF-16 code units, as AWS's Java services count),
  the pattern (matched whole, a Java-style pattern read with the `regex` package, which knows
  `\\p{L}` and friends) and the enum;
- numbers: the maximum (and the minimum of a float, which botocore skips);
- lists and maps: the maximum number of members or entries;
- blobs: the maximum number of bytes.

AWS's documented limits beyond the model (`documented_problems`), each with the words it
comes from in `LIMITS` and docs/development.md ("Strict stand-ins and moto"): items per call,
record and request sizes, SQS's message rules, EventBridge's entry size.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

import botocore.session
import regex
from botocore.model import OperationModel, ServiceModel, Shape
from botocore.validate import ParamValidator

Params = Mapping[str, Any]
KIB: Final = 1024
MIB: Final = 1024 * 1024


@functools.cache
def service_model(service: str) -> ServiceModel:
    """botocore's model of one service (loaded once per process)."""
    return botocore.session.get_session().get_service_model(service)


def operation(service: str, name: str) -> OperationModel:
    """botocore's model of one operation."""
    return service_model(service).operation_model(name)


def problems(service: str, name: str, params: Params) -> list[str]:
    """Everything AWS would refuse in this request (empty when it would accept it)."""
    return model_problems(service, name, params) + documented_problems(service, name, params)


def model_problems(service: str, name: str, params: Params) -> list[str]:
    """botocore's validation, then every constraint of the model it leaves out."""
    shape = operation(service, name).input_shape
    if shape is None:
        return []
    report = ParamValidator().validate(dict(params), shape)
    found = [report.generate_report()] if report.has_errors() else []
    found.extend(_walk(shape, params, ""))
    return found


# The model's constraints botocore does not check ------------------------------------------


def utf16_length(text: str) -> int:
    """A string's length as AWS's Java services count it."""
    return len(text.encode("utf-16-le")) // 2


@functools.cache
def _pattern(source: str) -> regex.Pattern[str]:
    return regex.compile(source)


def _walk(shape: Shape, value: Any, name: str) -> list[str]:
    """The constraints of `shape` that `value` breaks (a value of the wrong type is
    botocore's to report, and skipped here)."""
    kind = shape.type_name
    meta = shape.metadata
    where = name or "the request"
    if kind == "structure" and isinstance(value, Mapping):
        if getattr(shape, "is_document_type", False):
            return []
        members = shape.members  # type: ignore[attr-defined]
        found: list[str] = []
        for key, item in value.items():
            if key in members and item is not None:
                found.extend(_walk(members[key], item, f"{name}.{key}" if name else key))
        return found
    if kind == "list" and isinstance(value, list | tuple):
        found = _count(where, len(value), meta, "members")
        member = shape.member  # type: ignore[attr-defined]
        for index, item in enumerate(value):
            found.extend(_walk(member, item, f"{name}[{index}]"))
        return found
    if kind == "map" and isinstance(value, Mapping):
        found = _count(where, len(value), meta, "entries")
        key_shape, value_shape = shape.key, shape.value  # type: ignore[attr-defined]
        for key, item in value.items():
            found.extend(_walk(key_shape, key, f"{name} key {key!r}"))
            found.extend(_walk(value_shape, item, f"{name}[{key!r}]"))
        return found
    if kind == "string" and isinstance(value, str):
        return _string(shape, value, where)
    if kind in ("integer", "long", "float", "double") and isinstance(value, int | float):
        return _range(where, value, meta)
    if kind == "blob" and isinstance(value, bytes | bytearray):
        high = meta.get("max")
        if high is not None and len(value) > high:
            return [f"{where}: {len(value)} bytes; the model allows at most {high}"]
    return []


def _count(where: str, count: int, meta: Mapping[str, Any], what: str) -> list[str]:
    high = meta.get("max")
    if high is not None and count > high:
        return [f"{where}: {count} {what}; the model allows at most {high}"]
    return []


def _range(where: str, number: float, meta: Mapping[str, Any]) -> list[str]:
    low, high = meta.get("min"), meta.get("max")
    if high is not None and number > high:
        return [f"{where}: {number} is over the model's maximum {high}"]
    if low is not None and number < low:
        return [f"{where}: {number} is under the model's minimum {low}"]
    return []


def _string(shape: Shape, value: str, where: str) -> list[str]:
    meta = shape.metadata
    found: list[str] = []
    high = meta.get("max")
    if high is not None and utf16_length(value) > high:
        found.append(f"{where}: {utf16_length(value)} characters; the model allows {high}")
    pattern = meta.get("pattern")
    if pattern is not None and not _pattern(pattern).fullmatch(value):
        found.append(f"{where}: does not match the model's pattern {pattern} ({shape.name})")
    enum = shape.enum  # type: ignore[attr-defined]
    if enum and value not in enum:
        found.append(f"{where}: {value!r} is not one of {', '.join(enum)}")
    return found


# AWS's documented limits beyond the model -------------------------------------------------


@dataclass(frozen=True)
class Limit:
    """One documented rule for one operation: the words it comes from, and the check."""

    source: str  # where AWS says it
    check: Callable[[Params], Iterable[str]]


def _too_many(params: Params, member: str, most: int, what: str) -> list[str]:
    count = len(params.get(member) or [])
    return [f"{member}: {count} {what}; at most {most} a request"] if count > most else []


def _kinesis_records(params: Params) -> list[str]:
    records = params.get("Records") or []
    # "The record size limit applies to the total size of the partition key and data blob."
    sizes = [
        len(_bytes(r.get("Data"))) + len(str(r.get("PartitionKey", "")).encode()) for r in records
    ]
    found = [
        f"Records[{i}]: {size} bytes with its partition key; a record may have 10 MiB"
        for i, size in enumerate(sizes)
        if size > 10 * MIB
    ]
    if sum(sizes) > 10 * MIB:
        found.append(f"Records: {sum(sizes)} bytes; a request may have 10 MiB")
    return found


def _firehose_records(params: Params) -> list[str]:
    records = params.get("Records") or []
    sizes = [len(_bytes(r.get("Data"))) for r in records]
    found = [
        f"Records[{i}]: {size} bytes; a record may have 1,000 KiB"
        for i, size in enumerate(sizes)
        if size > 1000 * KIB
    ]
    if sum(sizes) > 4 * MIB:
        found.append(f"Records: {sum(sizes)} bytes; a request may have 4 MiB")
    return found


def _firehose_record(params: Params) -> list[str]:
    size = len(_bytes((params.get("Record") or {}).get("Data")))
    return [f"Record: {size} bytes; a record may have 1,000 KiB"] if size > 1000 * KIB else []


def eventbridge_entry_size(entry: Mapping[str, Any]) -> int:
    """An entry's size as "Calculating PutEvents event entry size" counts it: Time 14
    bytes, then the UTF-8 bytes of Source, DetailType, Detail and each resource."""
    size = 14 if entry.get("Time") is not None else 0
    for member in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(member) or "").encode())
    return size + sum(len(str(r).encode()) for r in entry.get("Resources") or [])


def _eventbridge_entries(params: Params) -> list[str]:
    total = sum(eventbridge_entry_size(entry) for entry in params.get("Entries") or [])
    # "the total entry size must be less than 1MB"
    return [f"Entries: {total} bytes in all; must be less than 1 MB"] if total >= MIB else []


# SQS's model carries no constraints; its documentation does.
_SQS_BATCH_ID: Final = regex.compile(r"[A-Za-z0-9_-]{1,80}")
_SQS_CHARACTERS: Final = regex.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def _sqs_body(where: str, body: Any) -> list[str]:
    text = str(body or "")
    found = []
    if len(text.encode()) > MIB:
        found.append(f"{where}: {len(text.encode())} bytes; a message may have 1 MiB")
    if not _SQS_CHARACTERS.fullmatch(text):
        found.append(f"{where}: characters SQS does not allow (InvalidMessageContents)")
    return found


def _sqs_delay(where: str, value: Any) -> list[str]:
    if value is not None and not 0 <= int(value) <= 900:
        return [f"{where}: {value}; DelaySeconds is 0-900"]
    return []


def _sqs_send(params: Params) -> list[str]:
    return _sqs_body("MessageBody", params.get("MessageBody")) + _sqs_delay(
        "DelaySeconds", params.get("DelaySeconds")
    )


def _sqs_batch(params: Params, sized: bool = False) -> list[str]:
    entries = params.get("Entries") or []
    found = _too_many(params, "Entries", 10, "entries")
    ids = [str(entry.get("Id", "")) for entry in entries]
    for index, entry_id in enumerate(ids):
        if not _SQS_BATCH_ID.fullmatch(entry_id):
            found.append(f"Entries[{index}].Id: 1-80 of A-Z a-z 0-9 - _")
    if len(set(ids)) != len(ids):
        found.append("Entries: ids must be distinct (BatchEntryIdsNotDistinct)")
    if sized:
        total = 0
        for index, entry in enumerate(entries):
            found += _sqs_body(f"Entries[{index}].MessageBody", entry.get("MessageBody"))
            found += _sqs_delay(f"Entries[{index}].DelaySeconds", entry.get("DelaySeconds"))
            total += len(str(entry.get("MessageBody") or "").encode())
        if total > MIB:
            found.append(f"Entries: {total} bytes in all; a batch may have 1 MiB")
    return found


def _sqs_receive(params: Params) -> list[str]:
    found = []
    most = params.get("MaxNumberOfMessages")
    if most is not None and not 1 <= int(most) <= 10:
        found.append(f"MaxNumberOfMessages: {most}; 1-10")
    wait = params.get("WaitTimeSeconds")
    if wait is not None and not 0 <= int(wait) <= 20:
        found.append(f"WaitTimeSeconds: {wait}; 0-20")
    return found + _sqs_visibility(params)


def _sqs_visibility(params: Params) -> list[str]:
    timeout = params.get("VisibilityTimeout")
    if timeout is not None and not 0 <= int(timeout) <= 43_200:
        return [f"VisibilityTimeout: {timeout}; 0-43200 seconds (12 hours)"]
    return []


def _sqs_visibility_batch(params: Params) -> list[str]:
    found = _sqs_batch(params)
    for entry in params.get("Entries") or []:
        found += _sqs_visibility(entry)
    return found


def _profiles_object(params: Params) -> list[str]:
    # "A single profile object can be up to 250 KB" (customer-profiles-terminology); the
    # model's 256,000-character maximum on Object is checked above.
    objects = [params.get("Object")] + [i.get("Object") for i in params.get("Items") or []]
    return [
        f"Object: {len(str(o).encode())} bytes; a profile object may have 250 KB"
        for o in objects
        if o is not None and len(str(o).encode()) > 250 * KIB
    ]


def _bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value or "").encode()


SQS_DOCS: Final = "botocore's sqs model, the documentation of each operation"
LIMITS: Final[dict[tuple[str, str], Limit]] = {
    ("kinesis", "PutRecords"): Limit(
        "Kinesis PutRecords: 'Each record in the request can be as large as 10 MiB, up to a"
        " limit of 10 MiB for the entire request, including partition keys.'",
        _kinesis_records,
    ),
    ("firehose", "PutRecordBatch"): Limit(
        "Firehose PutRecordBatch: 'Each record in the request can be as large as 1,000 KB"
        " (before base64 encoding), up to a limit of 4 MB for the entire request.'",
        _firehose_records,
    ),
    ("firehose", "PutRecord"): Limit("Firehose PutRecord: up to 1,000 KB", _firehose_record),
    ("events", "PutEvents"): Limit(
        "EventBridge PutEvents: 'the total entry size must be less than 1MB', sized as"
        " 'Calculating PutEvents event entry size' says",
        _eventbridge_entries,
    ),
    ("sqs", "SendMessage"): Limit(SQS_DOCS, _sqs_send),
    ("sqs", "SendMessageBatch"): Limit(SQS_DOCS, functools.partial(_sqs_batch, sized=True)),
    ("sqs", "DeleteMessageBatch"): Limit(SQS_DOCS, _sqs_batch),
    ("sqs", "ChangeMessageVisibilityBatch"): Limit(SQS_DOCS, _sqs_visibility_batch),
    ("sqs", "ChangeMessageVisibility"): Limit(SQS_DOCS, _sqs_visibility),
    ("sqs", "ReceiveMessage"): Limit(SQS_DOCS, _sqs_receive),
    ("customer-profiles", "PutProfileObject"): Limit(
        "Customer Profiles terminology: 'A single profile object can be up to 250 KB'",
        _profiles_object,
    ),
    ("customer-profiles", "BatchPutProfileObject"): Limit(
        "Customer Profiles terminology: 'A single profile object can be up to 250 KB'",
        _profiles_object,
    ),
}


def documented_problems(service: str, name: str, params: Params) -> list[str]:
    """What AWS's documentation (not its model) says is wrong with the request."""
    limit = LIMITS.get((service, name))
    return [] if limit is None else list(limit.check(params))
