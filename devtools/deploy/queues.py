"""The stage's two SQS queues, as `devtools.queue_spec` specifies them: created or brought
to the spec without recreating them (`make deploy`), or compared with it read-only (`make
verify`). Chalice never creates SQS queues (DESIGN.md)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from botocore.exceptions import ClientError

from devtools.queue_spec import QueueSettingError, QueueSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType


@dataclass(frozen=True)
class QueueState:
    """One queue after `ensure_queue`: created, corrected (which attributes) or as it was."""

    name: str
    url: str
    arn: str
    created: bool = False
    changed: tuple[str, ...] = ()

    def describe(self) -> str:
        if self.created:
            return f"{self.name}: created"
        if self.changed:
            return f"{self.name}: updated {', '.join(self.changed)}"
        return f"{self.name}: already as specified"


def existing_queue_url(sqs: SQSClient, name: str) -> str | None:
    """The queue's URL, or None where no queue has that name."""
    try:
        return sqs.get_queue_url(QueueName=name)["QueueUrl"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        if code in {"AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist"}:
            return None
        raise


def attribute_differences(
    current: Mapping[QueueAttributeNameType, str], wanted: Mapping[QueueAttributeNameType, str]
) -> dict[QueueAttributeNameType, str]:
    """The attributes to set so `current` meets `wanted`.

    The visibility timeout is a floor (at least 6x the consumer's timeout), so a longer one
    an operator chose is kept. A queue encrypted with a KMS key of its own already has
    server-side encryption; SQS refuses to add SQS-managed encryption on top. Moving a queue
    to the stage's KMS key turns SQS-managed encryption off in the same call: "Only one
    server-side encryption option is supported per queue (for example, SSE-KMS or SSE-SQS)"
    (SetQueueAttributes, botocore's SQS model).
    """
    changes: dict[QueueAttributeNameType, str] = {}
    if "KmsMasterKeyId" in wanted and current.get("SqsManagedSseEnabled") == "true":
        changes["SqsManagedSseEnabled"] = "false"
    for name, value in wanted.items():
        have = current.get(name)
        if name == "VisibilityTimeout" and have is not None and int(have) >= int(value):
            continue
        if name == "SqsManagedSseEnabled" and current.get("KmsMasterKeyId"):
            continue
        if name == "RedrivePolicy" and have is not None:
            mine, theirs = json.loads(value), json.loads(have)
            if theirs.get("deadLetterTargetArn") == mine["deadLetterTargetArn"] and int(
                theirs.get("maxReceiveCount", 0)
            ) == int(mine["maxReceiveCount"]):
                continue
        if have != value:
            changes[name] = value
    return changes


def ensure_queue(
    sqs: SQSClient, name: str, attributes: Mapping[QueueAttributeNameType, str]
) -> QueueState:
    """Create the queue, or bring an existing one to `attributes` without recreating it
    (CreateQueue refuses an existing name with different attributes)."""
    url = existing_queue_url(sqs, name)
    created = url is None
    changed: dict[QueueAttributeNameType, str] = {}
    if url is None:
        url = sqs.create_queue(QueueName=name, Attributes=dict(attributes))["QueueUrl"]
    else:
        current = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["All"])["Attributes"]
        changed = attribute_differences(current, attributes)
        if changed:
            sqs.set_queue_attributes(QueueUrl=url, Attributes=changed)
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    return QueueState(name, url, arn, created, tuple(sorted(changed)))


def foreign_key(current: Mapping[QueueAttributeNameType, str], spec: QueueSpec) -> str | None:
    """The KMS key a queue is encrypted with when the stage names none (QUEUE_KMS_KEY empty):
    the functions' roles are not granted it, so every send and receive fails."""
    have = current.get("KmsMasterKeyId") or None
    return have if have is not None and spec.kms_key is None else None


def foreign_key_problem(name: str, key: str) -> str:
    return (
        f"queue {name}: encrypted with KMS key {key}, which the stage does not name, so"
        " the functions' roles are not granted kms:GenerateDataKey/kms:Decrypt on it and"
        f" every send fails: set QUEUE_KMS_KEY={key} in the stage's environment_variables,"
        " then make policies and redeploy"
    )


def refuse_foreign_keys(sqs: SQSClient, spec: QueueSpec) -> None:
    """Stop before changing anything when an existing queue has a key the stage does not
    name: deploying on would report success for a stage whose every send fails. Which key
    is right is the operator's call (name it, or change the queue's encryption by hand)."""
    problems: list[str] = []
    for name in (spec.dead_letter_queue, spec.events_queue):
        url = existing_queue_url(sqs, name)
        if url is None:
            continue
        attributes = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["KmsMasterKeyId"])
        key = foreign_key(attributes.get("Attributes", {}), spec)
        if key is not None:
            problems.append(foreign_key_problem(name, key) + " (deploy changed nothing)")
    if problems:
        raise QueueSettingError("\n".join(problems))


def ensure_queues(sqs: SQSClient, spec: QueueSpec) -> tuple[QueueState, QueueState]:
    """The dead-letter queue first: the events queue's redrive policy names its ARN. Refused
    (QueueSettingError) before any change when a queue has a KMS key the stage does not name."""
    refuse_foreign_keys(sqs, spec)
    dead_letter = ensure_queue(sqs, spec.dead_letter_queue, spec.dead_letter_attributes())
    events = ensure_queue(sqs, spec.events_queue, spec.events_attributes(dead_letter.arn))
    return events, dead_letter


def queue_problems(sqs: SQSClient, spec: QueueSpec) -> list[str]:
    """Read-only: how the deployed queues differ from the spec (empty when they match)."""
    problems: list[str] = []
    dead_letter_url = existing_queue_url(sqs, spec.dead_letter_queue)
    events_url = existing_queue_url(sqs, spec.events_queue)
    if dead_letter_url is None:
        problems.append(f"{spec.dead_letter_queue}: does not exist")
    if events_url is None:
        problems.append(f"{spec.events_queue}: does not exist")
    if dead_letter_url is None or events_url is None:
        return problems
    dead_letter = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["All"])[
        "Attributes"
    ]
    events = sqs.get_queue_attributes(QueueUrl=events_url, AttributeNames=["All"])["Attributes"]
    for name, current, wanted in (
        (spec.dead_letter_queue, dead_letter, spec.dead_letter_attributes()),
        (spec.events_queue, events, spec.events_attributes(dead_letter["QueueArn"])),
    ):
        for attribute, value in attribute_differences(current, wanted).items():
            problems.append(f"{name}: {attribute} is {current.get(attribute)!r}, want {value!r}")
    return problems
