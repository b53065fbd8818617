"""The events queue and its dead-letter queue, as every environment creates them.

One description serves the local stack and the deploy tooling, so a queue on a laptop
redrives, expires and hides messages exactly as the deployed one does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from chalicelib.queue import SQS_MESSAGE_BYTES
from devtools.paths import CHALICE_CONFIG, ROOT

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

# AWS's advice for Lambda event sources: at least six times the function's timeout, so a
# batch still being retried inside Lambda is not handed to a second invocation.
VISIBILITY_PER_TIMEOUT: Final = 6
MAX_RECEIVE_COUNT: Final = 5
EVENTS_RETENTION_SECONDS: Final = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS: Final = 14 * 24 * 3600  # SQS's maximum: time to fix and replay
KMS_KEY_VARIABLE: Final = "QUEUE_KMS_KEY"
_KMS_ARN: Final = re.compile(
    r"arn:(?P<partition>aws[a-z-]*):kms:(?P<region>[a-z]{2}(?:-[a-z]+)+-\d):(?P<account>\d{12}):"
    r"(?:key/(?P<key>mrk-[0-9a-f]{32}|[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})"
    r"|alias/(?P<alias>[A-Za-z0-9/_-]{1,250}))"
)


class QueueSettingError(SystemExit):
    """A queue setting of the stage that cannot be used; the message names it and the fix."""


@dataclass(frozen=True)
class KmsKey:
    """The customer managed KMS key both queues are encrypted with (QUEUE_KMS_KEY).

    Given as a key ARN or an alias ARN: an ARN, because IAM grants a key only by its full
    ARN, and the partition, region and account are then known on both deploy paths.
    """

    arn: str
    partition: str
    region: str
    account: str
    alias: str | None  # "alias/<name>" when given by alias, else None

    @classmethod
    def parse(cls, value: str, stage: str = "") -> KmsKey:
        match = _KMS_ARN.fullmatch(value.strip())
        where = f"stage {stage}: " if stage else ""
        if match is None:
            raise QueueSettingError(
                f"{where}{KMS_KEY_VARIABLE} must be a KMS key ARN"
                " (arn:aws:kms:<region>:<account>:key/<key id>) or alias ARN"
                f" (arn:aws:kms:<region>:<account>:alias/<name>), or empty; got {value!r}"
            )
        alias = match["alias"]
        if alias is not None and alias.startswith("aws/"):
            raise QueueSettingError(
                f"{where}{KMS_KEY_VARIABLE} names alias/{alias}, a key AWS manages: leave"
                f" {KMS_KEY_VARIABLE} empty for SQS-managed encryption, or name a key of yours"
            )
        return cls(
            arn=value.strip(),
            partition=match["partition"],
            region=match["region"],
            account=match["account"],
            alias=None if alias is None else f"alias/{alias}",
        )

    @property
    def grantable_arn(self) -> str:
        """What an IAM statement's Resource names: the key, or for an alias every key of its
        account and region (narrowed by `condition` to the one the alias points at)."""
        if self.alias is None:
            return self.arn
        return f"arn:{self.partition}:kms:{self.region}:{self.account}:key/*"

    @property
    def condition(self) -> dict[str, Any] | None:
        """IAM matches a key, never an alias, against Resource; an alias is matched with the
        kms:ResourceAliases condition key."""
        if self.alias is None:
            return None
        return {"ForAnyValue:StringEquals": {"kms:ResourceAliases": self.alias}}


def queue_kms_key(environment: Mapping[str, str], stage: str = "") -> KmsKey | None:
    """The stage's QUEUE_KMS_KEY, validated; None when empty (SQS-managed encryption)."""
    value = environment.get(KMS_KEY_VARIABLE, "").strip()
    return KmsKey.parse(value, stage) if value else None


def chalice_config(root: Path = ROOT) -> dict[str, Any]:
    config: dict[str, Any] = json.loads((root / CHALICE_CONFIG).read_text())
    return config


def stage_environment(stage: str, root: Path = ROOT) -> dict[str, str]:
    """What Chalice gives a stage: top-level environment_variables, then the stage's own."""
    config = chalice_config(root)
    stages = config.get("stages", {})
    if stage not in stages:
        known = ", ".join(sorted(stages)) or "none"
        raise SystemExit(f"stage {stage!r} is not in .chalice/config.json (stages: {known})")
    environment = {str(k): str(v) for k, v in config.get("environment_variables", {}).items()}
    environment.update(
        {str(k): str(v) for k, v in stages[stage].get("environment_variables", {}).items()}
    )
    return environment


def consumer_timeout_seconds(stage: str, root: Path = ROOT) -> int:
    """The `deliver` function's Lambda timeout for a stage (Chalice's default is 60 s)."""
    config = chalice_config(root)
    stage_config = config.get("stages", {}).get(stage, {})
    function = stage_config.get("lambda_functions", {}).get("deliver", {})
    timeout = function.get("lambda_timeout", stage_config.get("lambda_timeout"))
    return int(timeout if timeout is not None else config.get("lambda_timeout", 60))


def consumer_memory_mb(stage: str, root: Path = ROOT) -> int:
    """The `deliver` function's memory for a stage (Chalice's default is 128 MB)."""
    config = chalice_config(root)
    stage_config = config.get("stages", {}).get(stage, {})
    function = stage_config.get("lambda_functions", {}).get("deliver", {})
    memory = function.get("lambda_memory_size", stage_config.get("lambda_memory_size"))
    return int(memory if memory is not None else config.get("lambda_memory_size", 128))


@dataclass(frozen=True)
class QueueSpec:
    events_queue: str
    dead_letter_queue: str
    visibility_timeout_seconds: int
    max_receive_count: int = MAX_RECEIVE_COUNT
    kms_key: KmsKey | None = None  # None: SQS-managed encryption (SSE-SQS)

    @classmethod
    def for_stage(cls, stage: str, root: Path = ROOT) -> QueueSpec:
        environment = stage_environment(stage, root)
        return cls(
            events_queue=environment["EVENTS_QUEUE"],
            dead_letter_queue=environment["DEAD_LETTER_QUEUE"],
            visibility_timeout_seconds=VISIBILITY_PER_TIMEOUT
            * consumer_timeout_seconds(stage, root),
            kms_key=queue_kms_key(environment, stage),
        )

    def encryption_attributes(self) -> dict[QueueAttributeNameType, str]:
        """Both queues' encryption: the stage's KMS key, or SQS-managed keys. What `verify`
        expects to read back (SQS returns KmsMasterKeyId as it was set)."""
        if self.kms_key is not None:
            return {"KmsMasterKeyId": self.kms_key.arn}
        return {"SqsManagedSseEnabled": "true"}

    def dead_letter_attributes(self) -> dict[QueueAttributeNameType, str]:
        return {
            "MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS),
            # SQS's maximum, which the consumer sizes its dead letters to (a queue made
            # before August 2025 may still hold 256 KiB): docs/delivery.md#sqs-limits.
            "MaximumMessageSize": str(SQS_MESSAGE_BYTES),
            **self.encryption_attributes(),
        }

    def events_attributes(self, dead_letter_arn: str) -> dict[QueueAttributeNameType, str]:
        redrive = {
            "deadLetterTargetArn": dead_letter_arn,
            "maxReceiveCount": self.max_receive_count,
        }
        return {
            "VisibilityTimeout": str(self.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(EVENTS_RETENTION_SECONDS),
            "MaximumMessageSize": str(SQS_MESSAGE_BYTES),
            "RedrivePolicy": json.dumps(redrive),
            **self.encryption_attributes(),
        }
