"""Amazon SQS's documented rules: its model carries no constraints, its documentation
(each operation's page) does."""

from __future__ import annotations

import functools
from typing import Any, Final

import regex

from devtools.standins.limits.base import MIB, Limit, Params, too_many

_BATCH_ID: Final = regex.compile(r"[A-Za-z0-9_-]{1,80}")
_CHARACTERS: Final = regex.compile("[\t\n\r\x20-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]*")


def _body(where: str, body: Any) -> list[str]:
    text = str(body or "")
    found = []
    if len(text.encode()) > MIB:
        found.append(f"{where}: {len(text.encode())} bytes; a message may have 1 MiB")
    if not _CHARACTERS.fullmatch(text):
        found.append(f"{where}: characters SQS does not allow (InvalidMessageContents)")
    return found


def _delay(where: str, value: Any) -> list[str]:
    if value is not None and not 0 <= int(value) <= 900:
        return [f"{where}: {value}; DelaySeconds is 0-900"]
    return []


def _send(params: Params) -> list[str]:
    return _body("MessageBody", params.get("MessageBody")) + _delay(
        "DelaySeconds", params.get("DelaySeconds")
    )


def _batch(params: Params, sized: bool = False) -> list[str]:
    entries = params.get("Entries") or []
    found = too_many(params, "Entries", 10, "entries")
    ids = [str(entry.get("Id", "")) for entry in entries]
    for index, entry_id in enumerate(ids):
        if not _BATCH_ID.fullmatch(entry_id):
            found.append(f"Entries[{index}].Id: 1-80 of A-Z a-z 0-9 - _")
    if len(set(ids)) != len(ids):
        found.append("Entries: ids must be distinct (BatchEntryIdsNotDistinct)")
    if sized:
        total = 0
        for index, entry in enumerate(entries):
            found += _body(f"Entries[{index}].MessageBody", entry.get("MessageBody"))
            found += _delay(f"Entries[{index}].DelaySeconds", entry.get("DelaySeconds"))
            total += len(str(entry.get("MessageBody") or "").encode())
        if total > MIB:
            found.append(f"Entries: {total} bytes in all; a batch may have 1 MiB")
    return found


def _receive(params: Params) -> list[str]:
    found = []
    most = params.get("MaxNumberOfMessages")
    if most is not None and not 1 <= int(most) <= 10:
        found.append(f"MaxNumberOfMessages: {most}; 1-10")
    wait = params.get("WaitTimeSeconds")
    if wait is not None and not 0 <= int(wait) <= 20:
        found.append(f"WaitTimeSeconds: {wait}; 0-20")
    return found + _visibility(params)


def _visibility(params: Params) -> list[str]:
    timeout = params.get("VisibilityTimeout")
    if timeout is not None and not 0 <= int(timeout) <= 43_200:
        return [f"VisibilityTimeout: {timeout}; 0-43200 seconds (12 hours)"]
    return []


def _visibility_batch(params: Params) -> list[str]:
    found = _batch(params)
    for entry in params.get("Entries") or []:
        found += _visibility(entry)
    return found


DOCS: Final = "botocore's sqs model, the documentation of each operation"
LIMITS: Final = {
    ("sqs", "SendMessage"): Limit(DOCS, _send),
    ("sqs", "SendMessageBatch"): Limit(DOCS, functools.partial(_batch, sized=True)),
    ("sqs", "DeleteMessageBatch"): Limit(DOCS, _batch),
    ("sqs", "ChangeMessageVisibilityBatch"): Limit(DOCS, _visibility_batch),
    ("sqs", "ChangeMessageVisibility"): Limit(DOCS, _visibility),
    ("sqs", "ReceiveMessage"): Limit(DOCS, _receive),
}
