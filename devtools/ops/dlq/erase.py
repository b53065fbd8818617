"""`forget`'s part on the dead-letter queue: a forgotten visitor's messages deleted, no one
else's.

Every message is read once (`scan.Scanner`: each is hidden for the hold while the scan
runs, so none is read twice, and the rest are made visible again at the end). A message is
the visitor's when its body is a JSON object whose `endpoint_id` is one of their endpoint
ids or whose `user_id` is one of their user ids (every kind of dead letter the consumer
parks is an event message: rejections, `<destination>:profile`, `routing`, `redrive`, and
`decode` ones that are still JSON); it is deleted with the receipt handle of that very
receive, so a message the scan did not read is never deleted. A body that is not a JSON
object cannot be attributed for certain: one that contains an id is left and counted, for
the operator to read. Messages another reader holds while the scan runs (a replay in
flight) cannot be read: they are counted, and a later run deletes them; if a replay sends
them to the events queue meanwhile, the consumer drops them there (the suppression list).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Final

from botocore.exceptions import BotoCoreError, ClientError

from devtools.ops.dlq.scan import BATCH, DeadLetter, Scanner

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import DeleteMessageBatchRequestEntryTypeDef

ID_FIELDS: Final = ("endpoint_id", "user_id")


@dataclass
class DeadLetterErasure:
    """What one pass over the dead-letter queue did."""

    scanned: int = 0
    deleted: int = 0
    delete_failed: int = 0  # theirs, but SQS did not confirm the delete: a rerun retries
    unreadable: int = 0  # not a JSON object, yet containing one of the ids: left
    held_elsewhere: int = 0  # hidden by another reader during the scan: not read
    deleted_ids: list[str] = field(default_factory=list)  # their message ids, deleted

    @property
    def complete(self) -> bool:
        return not (self.delete_failed or self.held_elsewhere)

    def render(self, queue: str) -> list[str]:
        if not (self.deleted or self.delete_failed or self.unreadable or self.held_elsewhere):
            return [f"dead-letter queue {queue}: nothing left ({self.scanned:,} messages read)"]
        lines = [
            f"dead-letter queue {queue}: {self.deleted:,} message(s) of theirs deleted"
            f" ({self.scanned:,} messages read)"
        ]
        if self.delete_failed:
            lines.append(
                f"  {self.delete_failed:,} of theirs not deleted (SQS refused or did not"
                " answer): run the same command again"
            )
        if self.held_elsewhere:
            lines.append(
                f"  about {self.held_elsewhere:,} message(s) were hidden by another reader (a"
                " replay or a summary in flight) and could not be read: run the same command"
                " again once its hold is over"
            )
        if self.unreadable:
            lines.append(
                f"  {self.unreadable:,} message(s) are not event messages but contain one of the"
                f' ids: left. Read them (make ops ARGS="dlq --stage <stage> --rejected-at'
                ' decode --samples 10") and delete them by hand if they are theirs'
            )
        return lines


def ids_of(body: str) -> dict[str, str] | None:
    """The endpoint id and user id a message body names (by field); None when the body is
    not a JSON object (it cannot be attributed)."""
    try:
        document = json.loads(body)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    return {name: value for name in ID_FIELDS if isinstance(value := document.get(name), str)}


def erase_dead_letters(
    sqs: SQSClient,
    url: str,
    endpoint_ids: Collection[str],
    user_ids: Collection[str],
    hold_seconds: int,
) -> DeadLetterErasure:
    """Delete every message of the dead-letter queue at `url` whose endpoint id is one of
    `endpoint_ids` or whose user id is one of `user_ids` (see the module's docstring)."""
    wanted = {"endpoint_id": frozenset(endpoint_ids), "user_id": frozenset(user_ids)}
    every = wanted["endpoint_id"] | wanted["user_id"]
    report = DeadLetterErasure()
    scanner = Scanner(sqs, url, hold_seconds)
    try:
        for letters in scanner.batches():
            report.scanned += len(letters)
            theirs: list[DeadLetter] = []
            for letter in letters:
                named = ids_of(letter.body)
                if named is None:
                    report.unreadable += any(i in letter.body for i in every)
                elif any(value in wanted[field] for field, value in named.items()):
                    theirs.append(letter)
            if theirs:
                deleted = _delete(sqs, url, theirs)
                report.deleted += len(deleted)
                report.deleted_ids += deleted
                report.delete_failed += len(theirs) - len(deleted)
                scanner.forget(deleted)
        report.held_elsewhere = max(0, _not_visible(sqs, url) - scanner.holding())
    finally:
        scanner.release()
    return report


def _delete(sqs: SQSClient, url: str, letters: list[DeadLetter]) -> list[str]:
    """The message ids SQS confirmed deleted."""
    deleted: list[str] = []
    for start in range(0, len(letters), BATCH):
        chunk = letters[start : start + BATCH]
        entries: list[DeleteMessageBatchRequestEntryTypeDef] = [
            {"Id": str(n), "ReceiptHandle": letter.receipt_handle} for n, letter in enumerate(chunk)
        ]
        try:
            answer = sqs.delete_message_batch(QueueUrl=url, Entries=entries)
        except (BotoCoreError, ClientError):
            continue
        deleted += [chunk[int(item["Id"])].message_id for item in answer.get("Successful", [])]
    return deleted


def _not_visible(sqs: SQSClient, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(attributes.get("ApproximateNumberOfMessagesNotVisible", "0"))
