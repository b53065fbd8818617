"""The consumer's SQS event source mapping and the one setting Chalice cannot make on it,
`FunctionResponseTypes: [ReportBatchItemFailures]` (DESIGN.md: aws/chalice #2029): turned on
after `chalice deploy` and read back (`make deploy`), or checked (`make verify`)."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from devtools.deploy.queues import existing_queue_url
from devtools.paths import ROOT
from devtools.queue_spec import QueueSpec, chalice_config

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

PARTIAL_BATCH: Final = "ReportBatchItemFailures"
# Lambda refuses updates while a mapping is Creating/Updating; Chalice has just created it.
MAPPING_SETTLE_SECONDS: Final = 120.0
MAPPING_POLL_SECONDS: Final = 2.0
BUSY_STATES: Final = frozenset({"Creating", "Updating", "Enabling", "Disabling"})


def consumer_function_name(stage: str, root: Path = ROOT) -> str:
    """What `chalice deploy` names the `deliver` function: <app>-<stage>-deliver."""
    return f"{chalice_config(root)['app_name']}-{stage}-deliver"


def consumer_mappings(
    lambda_client: Any, queue_arn: str, function_name: str
) -> list[dict[str, Any]]:
    """The mappings from the events queue to the consumer (normally exactly one). Listed by
    queue and matched on the function's name: the function is named either way when a
    mapping is made."""
    found: list[dict[str, Any]] = []
    paginator = lambda_client.get_paginator("list_event_source_mappings")
    for page in paginator.paginate(EventSourceArn=queue_arn):
        for mapping in page.get("EventSourceMappings", []):
            # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
            arn = str(mapping.get("FunctionArn", ""))
            if arn.split(":function:")[-1].split(":")[0] == function_name:
                found.append(dict(mapping))
    return found


def has_partial_batch_responses(mapping: Mapping[str, Any]) -> bool:
    return PARTIAL_BATCH in (mapping.get("FunctionResponseTypes") or [])


@dataclass
class MappingResult:
    uuid: str
    already_on: bool
    verified: bool
    state: str
    notes: list[str] = field(default_factory=list)


def enable_partial_batch_responses(
    lambda_client: Any,
    uuid: str,
    settle_seconds: float = MAPPING_SETTLE_SECONDS,
    sleep: Callable[[float], None] = time.sleep,
) -> MappingResult:
    """Turn `ReportBatchItemFailures` on (only if off) and read it back until Lambda agrees."""
    deadline = time.monotonic() + settle_seconds
    mapping = lambda_client.get_event_source_mapping(UUID=uuid)
    already_on = has_partial_batch_responses(mapping)
    while not already_on:
        try:
            lambda_client.update_event_source_mapping(
                UUID=uuid, FunctionResponseTypes=[PARTIAL_BATCH]
            )
            break
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code != "ResourceInUseException" or time.monotonic() > deadline:
                raise
            sleep(MAPPING_POLL_SECONDS)  # still Creating/Updating after chalice deploy
    while True:
        mapping = lambda_client.get_event_source_mapping(UUID=uuid)
        state = str(mapping.get("State", ""))
        if state not in BUSY_STATES or time.monotonic() > deadline:
            break
        sleep(MAPPING_POLL_SECONDS)
    return MappingResult(uuid, already_on, has_partial_batch_responses(mapping), state)


def configure_mapping(stage: str, root: Path, sqs: SQSClient, lambda_client: Any) -> int:
    """Enable and verify the setting on the consumer's mapping; 0 when it is on."""
    spec = QueueSpec.for_stage(stage, root)
    url = existing_queue_url(sqs, spec.events_queue)
    if url is None:
        print(f"mapping: {spec.events_queue} does not exist; run deploy first", file=sys.stderr)
        return 1
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"][
        "QueueArn"
    ]
    function = consumer_function_name(stage, root)
    mappings = consumer_mappings(lambda_client, arn, function)
    if not mappings:
        print(
            f"mapping: no event source mapping from {spec.events_queue} to {function}."
            " chalice deploy creates it: did it get that far?",
            file=sys.stderr,
        )
        return 1
    status = 0
    for mapping in mappings:
        result = enable_partial_batch_responses(lambda_client, mapping["UUID"])
        if result.verified:
            how = "already on" if result.already_on else "turned on"
            print(f"mapping {result.uuid}: {PARTIAL_BATCH} {how} and verified ({result.state})")
        else:
            print(
                f"mapping {result.uuid}: {PARTIAL_BATCH} is NOT on after the update"
                f" (state {result.state}); run this command again",
                file=sys.stderr,
            )
            status = 1
    return status
