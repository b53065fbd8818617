"""The events queue and its dead-letter queue, as every environment creates them.

One description serves the local stack and the deploy tooling, so a queue on a laptop
redrives, expires and hides messages exactly as the deployed one does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from devtools.paths import CHALICE_CONFIG, ROOT

if TYPE_CHECKING:
    from mypy_boto3_sqs.literals import QueueAttributeNameType

# AWS's advice for Lambda event sources: at least six times the function's timeout, so a
# batch still being retried inside Lambda is not handed to a second invocation.
VISIBILITY_PER_TIMEOUT: Final = 6
MAX_RECEIVE_COUNT: Final = 5
EVENTS_RETENTION_SECONDS: Final = 4 * 24 * 3600
DEAD_LETTER_RETENTION_SECONDS: Final = 14 * 24 * 3600  # SQS's maximum: time to fix and replay


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


@dataclass(frozen=True)
class QueueSpec:
    events_queue: str
    dead_letter_queue: str
    visibility_timeout_seconds: int
    max_receive_count: int = MAX_RECEIVE_COUNT

    @classmethod
    def for_stage(cls, stage: str, root: Path = ROOT) -> QueueSpec:
        environment = stage_environment(stage, root)
        return cls(
            events_queue=environment["EVENTS_QUEUE"],
            dead_letter_queue=environment["DEAD_LETTER_QUEUE"],
            visibility_timeout_seconds=VISIBILITY_PER_TIMEOUT
            * consumer_timeout_seconds(stage, root),
        )

    def dead_letter_attributes(self) -> dict[QueueAttributeNameType, str]:
        return {
            "MessageRetentionPeriod": str(DEAD_LETTER_RETENTION_SECONDS),
            "SqsManagedSseEnabled": "true",
        }

    def events_attributes(self, dead_letter_arn: str) -> dict[QueueAttributeNameType, str]:
        redrive = {
            "deadLetterTargetArn": dead_letter_arn,
            "maxReceiveCount": self.max_receive_count,
        }
        return {
            "VisibilityTimeout": str(self.visibility_timeout_seconds),
            "MessageRetentionPeriod": str(EVENTS_RETENTION_SECONDS),
            "RedrivePolicy": json.dumps(redrive),
            "SqsManagedSseEnabled": "true",
        }
