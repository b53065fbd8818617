"""The `chalice deploy` path, made complete: queues first, then Chalice, then the one setting
Chalice cannot make.

    python -m devtools.deploy.stage deploy --stage prod     # queues, chalice deploy, mapping
    python -m devtools.deploy.stage verify --stage prod     # read-only: queues and mapping
    python -m devtools.deploy.stage teardown --stage prod --yes

Chalice never creates SQS queues and cannot set `FunctionResponseTypes` on the event source
mapping it creates (DESIGN.md). `deploy` creates or corrects both queues from
`devtools.queue_spec` (idempotent: run it as often as you like), runs `chalice deploy`, then
turns on `ReportBatchItemFailures` on the consumer's mapping and reads it back. It does that
even when `chalice deploy` failed half-way, because a mapping Chalice already created would
otherwise run without the setting. Every AWS call uses your usual credentials and region
(AWS_PROFILE, AWS_REGION / AWS_DEFAULT_REGION), exactly as `chalice deploy` does.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import ClientError

from devtools.deploy.bytecode import compile_tree
from devtools.deploy.preflight import check_stage
from devtools.paths import ROOT
from devtools.process import run, tool
from devtools.queue_spec import QueueSpec, chalice_config, stage_environment

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.literals import QueueAttributeNameType

PARTIAL_BATCH: Final = "ReportBatchItemFailures"
# Lambda refuses updates while a mapping is Creating/Updating; Chalice has just created it.
MAPPING_SETTLE_SECONDS: Final = 120.0
MAPPING_POLL_SECONDS: Final = 2.0
BUSY_STATES: Final = frozenset({"Creating", "Updating", "Enabling", "Disabling"})

ChaliceRunner = Callable[[Sequence[str], Path], int]


def run_chalice(arguments: Sequence[str], root: Path) -> int:
    return run([tool("chalice"), "--project-dir", str(root), *arguments], cwd=root)


# Queues -----------------------------------------------------------------------------------


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


def _queue_url(sqs: SQSClient, name: str) -> str | None:
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
    server-side encryption; SQS refuses to add SQS-managed encryption on top.
    """
    changes: dict[QueueAttributeNameType, str] = {}
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
    url = _queue_url(sqs, name)
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


def ensure_queues(sqs: SQSClient, spec: QueueSpec) -> tuple[QueueState, QueueState]:
    """The dead-letter queue first: the events queue's redrive policy names its ARN."""
    dead_letter = ensure_queue(sqs, spec.dead_letter_queue, spec.dead_letter_attributes())
    events = ensure_queue(sqs, spec.events_queue, spec.events_attributes(dead_letter.arn))
    return events, dead_letter


def queue_problems(sqs: SQSClient, spec: QueueSpec) -> list[str]:
    """Read-only: how the deployed queues differ from the spec (empty when they match)."""
    problems: list[str] = []
    dead_letter_url = _queue_url(sqs, spec.dead_letter_queue)
    events_url = _queue_url(sqs, spec.events_queue)
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


# The event source mapping -----------------------------------------------------------------


def consumer_function_name(stage: str, root: Path = ROOT) -> str:
    """What `chalice deploy` names the `deliver` function: <app>-<stage>-deliver."""
    return f"{chalice_config(root)['app_name']}-{stage}-deliver"


def consumer_mappings(lambda_client: Any, queue_arn: str, function_name: str) -> list[Any]:
    """The mappings from the events queue to the consumer (normally exactly one)."""
    found: list[Any] = []
    paginator = lambda_client.get_paginator("list_event_source_mappings")
    for page in paginator.paginate(EventSourceArn=queue_arn):
        for mapping in page.get("EventSourceMappings", []):
            # arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]
            arn = str(mapping.get("FunctionArn", ""))
            if arn.split(":function:")[-1].split(":")[0] == function_name:
                found.append(mapping)
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
    url = _queue_url(sqs, spec.events_queue)
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


def report_batch_item_failures_advice(stage: str, environment: Mapping[str, str]) -> str:
    if environment.get("REPORT_BATCH_ITEM_FAILURES", "").strip().lower() in {"true", "1"}:
        return f"stage {stage}: REPORT_BATCH_ITEM_FAILURES=true matches the mapping. Good."
    return (
        f"stage {stage}: the consumer runs with REPORT_BATCH_ITEM_FAILURES=false, which is safe"
        " with either mapping setting. Now that the mapping is verified you may set it to"
        " true in .chalice/config.json and deploy again: partial batches then stop counting"
        " as Lambda errors."
    )


# Commands ---------------------------------------------------------------------------------


@dataclass
class Clients:
    sqs: SQSClient
    lambda_client: Any

    @classmethod
    def from_session(cls, profile: str | None) -> Clients:
        session = boto3.Session(profile_name=profile)
        return cls(session.client("sqs"), session.client("lambda"))


def deploy(
    stage: str,
    root: Path,
    clients: Clients,
    chalice: ChaliceRunner = run_chalice,
    chalice_args: Sequence[str] = (),
) -> int:
    check_stage(stage, root)
    spec = QueueSpec.for_stage(stage, root)
    for state in ensure_queues(clients.sqs, spec):
        print(f"queue {state.describe()}")
    # Chalice zips chalicelib/ as it is on disk, __pycache__ included: with its bytecode
    # there, Lambda does not compile our modules at each cold start (dependencies, which
    # Chalice zips itself, still are; `make package` compiles the whole bundle).
    compile_tree(root / "chalicelib")
    status = chalice(["deploy", "--stage", stage, *chalice_args], root)
    mapping_status = configure_mapping(stage, root, clients.sqs, clients.lambda_client)
    if status != 0:
        print(
            f"chalice deploy failed (exit {status}); the queues and any mapping it created"
            " are configured. Fix the error above and run this command again.",
            file=sys.stderr,
        )
        return 1
    if mapping_status != 0:
        return 1
    print(report_batch_item_failures_advice(stage, stage_environment(stage, root)))
    print(f"next: python -m devtools.ops check --stage {stage}")
    return 0


def verify(stage: str, root: Path, clients: Clients) -> int:
    """Read-only check of the stage, on either deploy path: devtools/deploy/verify.py
    (`make verify STAGE=...`, which also takes --stack-name)."""
    from devtools.deploy.verify import verify_stage  # it imports this module

    cloudformation = boto3.client("cloudformation", region_name=clients.sqs.meta.region_name)
    return verify_stage(stage, root, clients.sqs, clients.lambda_client, cloudformation)


def _message_count(sqs: SQSClient, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=[
            "ApproximateNumberOfMessages",
            "ApproximateNumberOfMessagesNotVisible",
            "ApproximateNumberOfMessagesDelayed",
        ],
    )["Attributes"]
    return sum(int(value) for value in attributes.values())


def teardown(
    stage: str,
    root: Path,
    clients: Clients,
    keep_queues: bool,
    force: bool,
    chalice: ChaliceRunner = run_chalice,
) -> int:
    """`chalice delete`, then the queues; never silently deletes undelivered events."""
    spec = QueueSpec.for_stage(stage, root)
    urls = {name: _queue_url(clients.sqs, name) for name in spec_names(spec)}
    if not keep_queues and not force:
        waiting = {
            name: count
            for name, url in urls.items()
            if url is not None and (count := _message_count(clients.sqs, url))
        }
        if waiting:
            listed = ", ".join(f"{name} ({count})" for name, count in waiting.items())
            print(
                f"refusing to delete queues holding messages: {listed}. Replay or inspect"
                f" them (python -m devtools.ops dlq --stage {stage}), or pass --force or"
                " --keep-queues.",
                file=sys.stderr,
            )
            return 1
    status = chalice(["delete", "--stage", stage], root)
    if status != 0:
        print(f"chalice delete failed (exit {status}); queues left as they are", file=sys.stderr)
        return 1
    if keep_queues:
        print("queues kept: " + ", ".join(spec_names(spec)))
        return 0
    for name, url in urls.items():
        if url is None:
            print(f"queue {name}: already gone")
            continue
        clients.sqs.delete_queue(QueueUrl=url)
        print(f"queue {name}: deleted")
    return 0


def spec_names(spec: QueueSpec) -> tuple[str, str]:
    """Events queue first: deleted before its dead-letter queue."""
    return (spec.events_queue, spec.dead_letter_queue)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.deploy.stage",
        description="Deploy a stage with chalice deploy, plus the queues and the event source"
        " mapping setting Chalice cannot make.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "deploy": f"create/update the queues, chalice deploy, enable and verify {PARTIAL_BATCH}",
        "queues": "create or correct the events queue and dead-letter queue only",
        "mapping": f"enable and verify {PARTIAL_BATCH} only (after a plain chalice deploy)",
        "verify": "read-only check of the queues and the mapping setting",
        "teardown": "chalice delete, then delete both queues",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--stage", required=True, help="stage in .chalice/config.json")
        command.add_argument("--profile", help="AWS profile (default: your usual credentials)")
        command.add_argument(
            "--project-dir", type=Path, default=ROOT, help="the Chalice project (default: here)"
        )
        if name == "teardown":
            command.add_argument("--yes", action="store_true", help="really delete")
            command.add_argument(
                "--keep-queues", action="store_true", help="delete the app, keep the queues"
            )
            command.add_argument(
                "--force",
                action="store_true",
                help="delete queues even when they hold messages (undelivered events)",
            )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None, clients: Clients | None = None) -> int:
    args = parse_args(argv)
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile  # chalice reads it too
    clients = clients or Clients.from_session(args.profile)
    root: Path = args.project_dir.resolve()
    if args.command == "deploy":
        return deploy(args.stage, root, clients)
    if args.command == "queues":
        for state in ensure_queues(clients.sqs, QueueSpec.for_stage(args.stage, root)):
            print(f"queue {state.describe()}")
        return 0
    if args.command == "mapping":
        return configure_mapping(args.stage, root, clients.sqs, clients.lambda_client)
    if args.command == "verify":
        return verify(args.stage, root, clients)
    if not args.yes:
        print(
            f"teardown deletes stage {args.stage}'s API, functions and (unless --keep-queues)"
            " its queues. Run again with --yes.",
            file=sys.stderr,
        )
        return 2
    return teardown(args.stage, root, clients, args.keep_queues, args.force)


if __name__ == "__main__":
    sys.exit(main())
