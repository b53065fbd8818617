"""The `chalice deploy` path, made complete: queues first, then Chalice, then the one setting
Chalice cannot make; and a teardown that finds the stage in AWS.

    make deploy STAGE=prod       # queues, chalice deploy, mapping
    make verify STAGE=prod       # read-only: queues and mapping (devtools/deploy/verify.py)
    make teardown STAGE=prod     # lists, asks, deletes

(`.venv/bin/python -m devtools.deploy.stage deploy|verify|teardown --stage prod` underneath.)

Chalice never creates SQS queues and cannot set `FunctionResponseTypes` on the event source
mapping it creates (DESIGN.md). `deploy` creates or corrects both queues from
`devtools.queue_spec` (`devtools.deploy.queues`; idempotent: run it as often as you like),
writes Chalice's `.chalice/deployed/<stage>.json` from what already exists in AWS
(`inventory`: so a fresh clone or a run after a failed one updates the same API and mapping
instead of creating second ones), runs `chalice deploy`, then turns on
`ReportBatchItemFailures` on the consumer's mapping and reads it back
(`devtools.deploy.mapping`). It does that even when `chalice deploy` failed half-way, because
a mapping Chalice already created would otherwise run without the setting. The preflight
(settings, policy files, region, credentials) runs before any AWS call. Every AWS call uses
your usual credentials and region (AWS_PROFILE, AWS_REGION or AWS_DEFAULT_REGION, or the
profile's region: `devtools.process.aws_region`), exported to `chalice` as well.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import QueueWiring
from chalicelib.env import ConfigError
from devtools.deploy.bytecode import compile_tree
from devtools.deploy.erasure_table import ensure_erasure_table
from devtools.deploy.inventory import (
    Adoption,
    Inventory,
    StageNames,
    chalice_state,
    deployed_state_file,
    find,
    recorded_values,
)
from devtools.deploy.mapping import PARTIAL_BATCH, configure_mapping
from devtools.deploy.preflight import check_aws, check_identity, check_region, check_stage
from devtools.deploy.queues import ensure_queues
from devtools.deploy.template import merge_template
from devtools.deploy.verify import chalice_deployment, check, default_stack_name, verify_stage
from devtools.locks import chalice_environment
from devtools.paths import ROOT
from devtools.process import run, tool
from devtools.queue_spec import QueueSpec, stage_environment

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient


ChaliceRunner = Callable[[Sequence[str], Path], int]


def run_chalice(arguments: Sequence[str], root: Path) -> int:
    command = [tool("chalice"), "--project-dir", str(root), *arguments]
    return run(command, cwd=root, env=chalice_environment(root))  # the bundle as locked


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
    iam: Any
    apigateway: Any
    sts: Any
    logs: Any
    cloudformation: Any

    @classmethod
    def from_session(cls, session: Any) -> Clients:
        return cls(*(session.client(name) for name in SERVICES))

    @property
    def region(self) -> str:
        return str(self.sqs.meta.region_name)


SERVICES: Final = ("sqs", "lambda", "iam", "apigateway", "sts", "logs", "cloudformation")


def find_stage(stage: str, root: Path, clients: Clients) -> Inventory:
    names = StageNames.for_stage(stage, root)
    return find(
        names, clients.region, clients.sqs, clients.lambda_client, clients.iam, clients.apigateway
    )


def adopt(stage: str, root: Path, clients: Clients, events_queue_arn: str) -> Adoption:
    """Write `.chalice/deployed/<stage>.json` from what AWS holds, so `chalice deploy` updates
    the stage's API and mapping instead of creating second ones; remove duplicate mappings."""
    inventory = find_stage(stage, root, clients)
    adoption = chalice_state(inventory, events_queue_arn, recorded_values(stage, root))
    for mapping in adoption.extra_mappings:
        clients.lambda_client.delete_event_source_mapping(UUID=mapping["UUID"])
        print(f"mapping {mapping['UUID']}: a second mapping to the consumer: deleted")
    for api in adoption.extra_rest_apis:
        print(
            f"REST API {api.id} ({api.url(clients.region, inventory.names.api_gateway_stage)})"
            f" also invokes stage {stage}'s function; not used by this deploy. Once no tag"
            f" uses that URL: aws apigateway delete-rest-api --rest-api-id {api.id}",
            file=sys.stderr,
        )
    path = deployed_state_file(stage, root)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(adoption.state, indent=2) + "\n")
    adopted = [entry["name"] for entry in adoption.state["resources"]]
    print(
        f"found in AWS ({clients.region}): {', '.join(adopted) or 'nothing yet'};"
        f" written to {path.relative_to(root)} for chalice deploy"
    )
    return adoption


def deployed_url(stage: str, root: Path) -> str | None:
    return recorded_values(stage, root).get("rest_api", {}).get("rest_api_url")


def deploy(
    stage: str,
    root: Path,
    clients: Clients,
    chalice: ChaliceRunner = run_chalice,
    chalice_args: Sequence[str] = (),
) -> int:
    """Queues, then what exists adopted, then `chalice deploy`, then the mapping setting. Run
    it as often as you like, from any clone: it converges on one API, one mapping, one set of
    functions. (`main` runs the preflight first.)"""
    account = check_identity(clients.sts)
    print(f"stage {stage}: account {account}, region {clients.region}")
    spec = QueueSpec.for_stage(stage, root)
    events, dead_letters = ensure_queues(clients.sqs, spec)
    for state in (events, dead_letters):
        print(f"queue {state.describe()}")
    # The suppression list, with erasure on (devtools/deploy/erasure_table.py).
    dynamodb = boto3.client("dynamodb", region_name=clients.region)
    erasure_table = ensure_erasure_table(dynamodb, stage_environment(stage, root))
    if erasure_table is not None:
        print(f"table {erasure_table.describe()}")
    # Chalice zips chalicelib/ as it is on disk, __pycache__ included: with its bytecode
    # there, Lambda does not compile our modules at each cold start (dependencies, which
    # Chalice zips itself, still are; `make package` compiles the whole bundle).
    compile_tree(root / "chalicelib")
    adoption = adopt(stage, root, clients, events.arn)
    status = chalice(["deploy", "--stage", stage, *chalice_args], root)
    mapping_status = configure_mapping(stage, root, clients.sqs, clients.lambda_client)
    if status != 0:
        print(
            f"chalice deploy failed (exit {status}); the queues and any mapping it created"
            " are configured. Fix the error above and run this command again: it adopts"
            " what this run created.",
            file=sys.stderr,
        )
        return 1
    if mapping_status != 0:
        return 1
    if verify_deployed(stage, root, clients) != 0:
        print(
            f"stage {stage}: deployed, but not as its settings say (FAIL lines above): fix"
            " them and run this command again",
            file=sys.stderr,
        )
        return 1
    url = deployed_url(stage, root)
    if adoption.rest_api is not None and url is not None:
        same = adoption.rest_api.id in url
        print(f"API: {url} ({'unchanged' if same else 'NEW: update the GTM tag'})")
    elif url is not None:
        print(f"API: {url} (new: put it in the GTM tag)")
    print(report_batch_item_failures_advice(stage, stage_environment(stage, root)))
    print(f'next: make ops ARGS="check --stage {stage}"')
    return 0


def verify_deployed(stage: str, root: Path, clients: Clients) -> int:
    """What deploy ends with: verify's checks of the queues, the functions and the mapping
    (its setting, batch size, window and concurrency cap) on what was just deployed."""
    deployment = chalice_deployment(stage, root, clients.sqs)
    wiring = QueueWiring.from_env(stage_environment(stage, root))
    spec = QueueSpec.for_stage(stage, root)
    findings = check(deployment, spec, clients.sqs, clients.lambda_client, wiring)
    for line in findings.ok:
        print(f"ok   {line}")
    for line in findings.problems:
        print(f"FAIL {line}", file=sys.stderr)
    return 1 if findings.problems else 0


def verify(stage: str, root: Path, clients: Clients) -> int:
    """Read-only check of the stage, on either deploy path: devtools/deploy/verify.py
    (`make verify STAGE=...`, which also takes --stack-name)."""
    return verify_stage(stage, root, clients.sqs, clients.lambda_client, clients.cloudformation)


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


# Teardown ---------------------------------------------------------------------------------

Confirm = Callable[[str], "bool | None"]
# API Gateway allows one DeleteRestApi every 30 s per account.
DELETE_API_WAIT_SECONDS: Final = 31.0
DELETE_API_ATTEMPTS: Final = 4


def ask_terminal(question: str) -> bool | None:
    """y/N on the terminal; None when stdin is not one (a pipe, CI): nobody to ask."""
    if not sys.stdin.isatty():
        return None
    try:
        answer = input(question)
    except EOFError:
        return False
    return answer.strip().lower() in {"y", "yes"}


@dataclass
class TeardownPlan:
    delete: list[str]  # what will be deleted, as printed
    queues: dict[str, str]  # queue name -> URL, to delete
    left: list[str]  # what stays, and why
    held: list[str] = field(default_factory=list)  # queues left holding messages (exit 1)
    log_groups: list[str] = field(default_factory=list)  # to delete (--delete-logs)


def _log_groups(clients: Clients, names: StageNames) -> list[str]:
    found: list[str] = []
    for resource in names.functions:
        group = f"/aws/lambda/{names.function_name(resource)}"
        page = clients.logs.describe_log_groups(logGroupNamePrefix=group)
        found += [g for g in (x["logGroupName"] for x in page.get("logGroups", [])) if g == group]
    return found


def plan_teardown(
    stage: str,
    inventory: Inventory,
    clients: Clients,
    keep_queues: bool,
    force: bool,
    delete_logs: bool = False,
) -> TeardownPlan:
    names = inventory.names
    plan = TeardownPlan(delete=[], queues={}, left=[])
    plan.delete = [line for line in inventory.describe() if not line.startswith("queue ")]
    events_url = inventory.queues.get(names.events_queue)
    for name in (names.events_queue, names.dead_letter_queue):  # events queue first
        url = inventory.queues.get(name)
        if url is None:
            continue
        count = _message_count(clients.sqs, url)
        if keep_queues:
            plan.left.append(f"queue {name}: kept (--keep-queues)")
        elif count and not force:
            plan.held.append(name)
            plan.left.append(
                f"queue {name}: holds {count} message(s), undelivered events. Inspect or"
                f' replay them (make ops ARGS="dlq --stage {stage}"), then run teardown'
                f" again; or delete it with them: aws sqs delete-queue --queue-url {url}"
            )
        elif name == names.dead_letter_queue and events_url not in (None, *plan.queues.values()):
            plan.left.append(
                f"queue {name}: kept because the events queue, which stays, parks its failures here"
            )
        else:
            plan.queues[name] = url
            plan.delete.append(f"queue {name}" + (f" ({count} message(s))" if count else ""))
    for group in _log_groups(clients, names):
        if delete_logs:
            plan.log_groups.append(group)
            plan.delete.append(f"log group {group}")
            continue
        plan.left.append(
            f"log group {group}: Lambda writes it; kept for investigation. A CloudFormation"
            " stack of this stage creates it and fails while it exists: delete it with"
            f" make teardown STAGE={stage} YES=1 ARGS=--delete-logs, or"
            f" aws logs delete-log-group --log-group-name {group}"
        )
    return plan


def _delete_role(iam: Any, role_name: str) -> None:
    for policy in iam.list_role_policies(RoleName=role_name).get("PolicyNames", []):
        iam.delete_role_policy(RoleName=role_name, PolicyName=policy)
    attached = iam.list_attached_role_policies(RoleName=role_name).get("AttachedPolicies", [])
    for policy in attached:
        iam.detach_role_policy(RoleName=role_name, PolicyArn=policy["PolicyArn"])
    iam.delete_role(RoleName=role_name)


def _delete_rest_api(
    apigateway: Any, api_id: str, sleep: Callable[[float], None] = time.sleep
) -> None:
    for attempt in range(DELETE_API_ATTEMPTS):
        try:
            apigateway.delete_rest_api(restApiId=api_id)
            return
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            if code != "TooManyRequestsException" or attempt == DELETE_API_ATTEMPTS - 1:
                raise
            print(f"REST API {api_id}: API Gateway allows one deletion per 30 s; waiting")
            sleep(DELETE_API_WAIT_SECONDS)


def teardown(
    stage: str,
    root: Path,
    clients: Clients,
    keep_queues: bool = False,
    force: bool = False,
    yes: bool = False,
    confirm: Confirm = ask_terminal,
    sleep: Callable[[float], None] = time.sleep,
    delete_logs: bool = False,
) -> int:
    """Delete what deploy created, found in AWS (not in this checkout's record): the mapping,
    the API, the functions, their roles, then the queues, except a queue still holding
    messages, and with `delete_logs` the functions' log groups. Asks first unless `yes`.
    0 when nothing of the stage is left but log groups.

    A stage deployed with CloudFormation is the stack's: deleting its resources one by one
    would leave the stack failing on every update and delete. Then nothing is deleted here;
    the stack's delete command is printed, with what the stack keeps (`stack_teardown`)."""
    inventory = find_stage(stage, root, clients)
    stack = owning_stack(stage, root, inventory, clients)
    if stack is not None:
        return stack_teardown(stage, root, stack, clients)
    plan = plan_teardown(stage, inventory, clients, keep_queues, force, delete_logs)
    where = f"stage {stage} in {clients.region}"
    if not plan.delete:
        print(f"{where}: nothing to delete")
    else:
        print(f"{where}: teardown deletes")
        for line in plan.delete:
            print(f"  {line}")
    if plan.left:
        print("and leaves")
        for line in plan.left:
            print(f"  {line}")
    if plan.delete and not yes:
        answer = confirm("Delete these? [y/N] ")
        if answer is None:
            print(
                "nothing deleted: no terminal to ask on. Add --yes"
                f" (make teardown STAGE={stage} YES=1).",
                file=sys.stderr,
            )
            return 2
        if not answer:
            print("nothing deleted", file=sys.stderr)
            return 2
    failed: list[str] = []

    def attempt(what: str, action: Callable[[], object]) -> None:
        try:
            action()
            print(f"{what}: deleted")
        except ClientError as error:
            if error.response.get("Error", {}).get("Code", "") in GONE:
                print(f"{what}: already gone")
                return
            failed.append(f"{what}: {error}")
            print(f"{what}: NOT deleted: {error}", file=sys.stderr)

    lam = clients.lambda_client
    for mapping in inventory.mappings:
        attempt(
            f"mapping {mapping['UUID']}",
            partial(lam.delete_event_source_mapping, UUID=mapping["UUID"]),
        )
    for api in inventory.rest_apis:
        attempt(f"REST API {api.id}", partial(_delete_rest_api, clients.apigateway, api.id, sleep))
    for arn in inventory.functions.values():
        attempt(f"function {arn.split(':')[-1]}", partial(lam.delete_function, FunctionName=arn))
    for role in inventory.roles:
        attempt(f"role {role}", partial(_delete_role, clients.iam, role))
    for name, url in plan.queues.items():
        attempt(f"queue {name}", partial(clients.sqs.delete_queue, QueueUrl=url))
    for group in plan.log_groups:
        attempt(f"log group {group}", partial(clients.logs.delete_log_group, logGroupName=group))
    state = deployed_state_file(stage, root)
    if state.exists():
        state.unlink()
        print(f"{state.relative_to(root)}: removed")
    if failed or plan.held:
        left = [*failed, *(f"queue {name} (holds messages)" for name in plan.held)]
        print(f"teardown of stage {stage} left: {'; '.join(left)}", file=sys.stderr)
        return 1
    return 0


# The stack path -------------------------------------------------------------------------------

STACK_TAG: Final = "aws:cloudformation:stack-name"  # CloudFormation tags what it creates


def owning_stack(stage: str, root: Path, inventory: Inventory, clients: Clients) -> str | None:
    """The CloudFormation stack the stage belongs to: the stack `<app>-<stage>` when it exists,
    else the stack a found function is tagged with. None: the chalice deploy path."""
    name = default_stack_name(stage, root)
    try:
        [found] = clients.cloudformation.describe_stacks(StackName=name)["Stacks"]
        if found.get("StackStatus") != "DELETE_COMPLETE":
            return name
    except ClientError as error:
        if "does not exist" not in str(error.response.get("Error", {}).get("Message", "")):
            raise
    for arn in inventory.functions.values():
        tags = clients.lambda_client.list_tags(Resource=arn).get("Tags", {})
        if STACK_TAG in tags:
            return str(tags[STACK_TAG])
    return None


def retained_resources(stage: str, root: Path) -> dict[str, str]:
    """Logical id -> type of what the stage's template keeps when its stack is deleted
    (DeletionPolicy Retain): the queues, and the dedupe table or a destination's data where
    the stage has them."""
    try:
        template = merge_template(stage, root)
    except (ConfigError, ValueError, SystemExit):
        template = {"Resources": {}}
    kept = {
        logical_id: str(resource.get("Type", ""))
        for logical_id, resource in template["Resources"].items()
        if resource.get("DeletionPolicy") == "Retain"
    }
    return kept or {"EventsQueue": "AWS::SQS::Queue", "DeadLetterQueue": "AWS::SQS::Queue"}


def stack_teardown(stage: str, root: Path, stack: str, clients: Clients) -> int:
    """Print the stack's delete command and what it keeps; delete nothing. 1: the stage is
    still there."""
    region = clients.region
    print(
        f"stage {stage} in {region} is CloudFormation stack {stack}: teardown deletes nothing"
        " of it (resources deleted behind a stack's back leave it failing). Delete the stack:"
    )
    print(f"  aws cloudformation delete-stack --stack-name {stack} --region {region}")
    print(f"  aws cloudformation wait stack-delete-complete --stack-name {stack} --region {region}")
    resources = {
        str(r["LogicalResourceId"]): str(r.get("PhysicalResourceId", ""))
        for r in clients.cloudformation.describe_stack_resources(StackName=stack)["StackResources"]
    }
    kept = {
        logical_id: (kind, resources[logical_id])
        for logical_id, kind in retained_resources(stage, root).items()
        if resources.get(logical_id)
    }
    if kept:
        print("The stack keeps (DeletionPolicy Retain), to delete by hand once you are sure:")
    for logical_id, (kind, physical) in kept.items():
        print(f"  {_kept(stage, logical_id, kind, physical, clients)}")
    return 1


def _kept(stage: str, logical_id: str, kind: str, physical: str, clients: Clients) -> str:
    if kind == "AWS::SQS::Queue":
        name = physical.rstrip("/").rsplit("/", 1)[-1]
        try:
            count = _message_count(clients.sqs, physical)
        except ClientError:
            return f"queue {name}: already gone"
        held = f"holds {count} message(s), undelivered events: " if count else "empty; "
        return (
            f"queue {name} ({logical_id}): {held}inspect or replay them first"
            f' (make ops ARGS="dlq --stage {stage}"), then aws sqs delete-queue'
            f" --queue-url {physical}. A new stack of this stage cannot be created while it"
            " exists"
        )
    if kind == "AWS::DynamoDB::Table":
        return (
            f"DynamoDB table {physical} ({logical_id}): digests that expire by themselves;"
            f" aws dynamodb delete-table --table-name {physical}"
        )
    return f"{kind} {physical} ({logical_id}): your data, kept; delete it in its own console"


GONE: Final = frozenset(
    {"ResourceNotFoundException", "NoSuchEntity", "NotFoundException", "QueueDoesNotExist"}
    | {"AWS.SimpleQueueService.NonExistentQueue"}
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog=".venv/bin/python -m devtools.deploy.stage",
        description="Deploy a stage with chalice deploy, plus the queues and the event source"
        " mapping setting Chalice cannot make.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    helps = {
        "deploy": "create/update the queues, adopt what exists, chalice deploy, enable and"
        f" verify {PARTIAL_BATCH}",
        "queues": "create or correct the events queue and dead-letter queue only",
        "mapping": f"enable and verify {PARTIAL_BATCH} only (after a plain chalice deploy)",
        "verify": "read-only check of the queues and the mapping setting",
        "teardown": "delete the stage's mapping, API, functions, roles and queues, found in AWS"
        " (a stage deployed with CloudFormation: print the stack's delete command instead)",
    }
    for name, text in helps.items():
        command = commands.add_parser(name, help=text, description=text)
        command.add_argument("--stage", required=True, help="stage in .chalice/config.json")
        command.add_argument("--profile", help="AWS profile (default: your usual credentials)")
        command.add_argument(
            "--project-dir", type=Path, default=ROOT, help="the Chalice project (default: here)"
        )
        if name == "teardown":
            command.add_argument(
                "--yes", action="store_true", help="delete without asking (default: ask)"
            )
            command.add_argument(
                "--keep-queues", action="store_true", help="delete the app, keep the queues"
            )
            command.add_argument(
                "--force",
                action="store_true",
                help="delete queues even when they hold messages (undelivered events)",
            )
            command.add_argument(
                "--delete-logs",
                action="store_true",
                help="also delete the functions' log groups (a CloudFormation stack of the"
                " stage cannot be created while they exist)",
            )
    return parser.parse_args(argv)


def main(
    argv: Sequence[str] | None = None,
    clients: Clients | None = None,
    confirm: Confirm = ask_terminal,
    chalice: ChaliceRunner = run_chalice,
) -> int:
    """Preflight (settings, policy files, region, credentials) before any AWS call; an AWS
    error afterwards is one line too."""
    args = parse_args(argv)
    if args.profile:
        os.environ["AWS_PROFILE"] = args.profile  # chalice reads it too
    root: Path = args.project_dir.resolve()
    if args.command in {"deploy", "queues"}:
        check_stage(args.stage, root)
    else:
        stage_environment(args.stage, root)  # the stage exists
    region = check_aws(args.profile)
    if args.command != "teardown":  # a stage deployed before this check can still be removed
        check_region(args.stage, region, root)
    clients = clients or Clients.from_session(boto3.Session(profile_name=args.profile))
    try:
        if args.command == "deploy":
            return deploy(args.stage, root, clients, chalice)
        if args.command == "queues":
            for state in ensure_queues(clients.sqs, QueueSpec.for_stage(args.stage, root)):
                print(f"queue {state.describe()}")
            return 0
        if args.command == "mapping":
            return configure_mapping(args.stage, root, clients.sqs, clients.lambda_client)
        if args.command == "verify":
            return verify(args.stage, root, clients)
        return teardown(
            args.stage,
            root,
            clients,
            args.keep_queues,
            args.force,
            args.yes,
            confirm,
            delete_logs=args.delete_logs,
        )
    except (ClientError, BotoCoreError) as error:
        print(f"{args.command} stopped: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
