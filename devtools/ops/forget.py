"""`ops forget`: forgetting a visitor (GDPR, CCPA erasure) everywhere pixel-relay put them.

    make ops ARGS="forget --stage prod --endpoint-id ID [--user-id ID ...]"

Given endpoint ids and user ids (each repeatable; all of one person), in this order:

1. **The suppression list** (`ERASURE_TABLE`, `chalicelib/erasure.py`): each id goes on it,
   first, so that from now on the consumer drops every event of theirs it reads, queued,
   requeued or replayed (counted `EventsErased`). An id already on it keeps the time it was
   first put there. A stage without `ERASURE_TABLE` is refused: without the list, events
   still queued would write again what this command deletes.
2. **A wait for batches in flight**: a batch the consumer read before the list changed may
   still be delivering; the command waits until the consumer's timeout has passed since
   the id was listed (nothing on a rerun).
3. **Each destination** (`Destination.forget`): Customer Profiles deletes the visitor's
   profiles and pixel-relay's objects on them; Pinpoint deletes the endpoints; a
   destination that streams to stores pixel-relay cannot reach sends them one erasure
   record (`announces_erasure`), once per id: the list's item remembers where it went, and
   a rerun does not send it again.
4. **The dead-letter queue**: the visitor's messages, and no one else's, deleted
   (`devtools.ops.dlq.erase`).

It prints what it did per place, and "nothing left" where there was nothing. A rerun is
harmless: it lists nothing again, deletes only what is still there, sends no second
record, and exits 0 once everything is done (1 while something is left to do: the line
says what, and running the same command again finishes it). docs/erasure.md says what is
and is not erased; docs/operations.md has the runbook entry.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import Settings
from chalicelib.destinations import registry
from chalicelib.destinations.base import Destination, Visitor
from chalicelib.env import ConfigError
from chalicelib.erasure import TABLE_VARIABLE, ErasureSettings, Kind, suppression_key
from chalicelib.outcomes import Verdict
from chalicelib.rules import FieldError, identifier
from devtools.ops.dlq.erase import erase_dead_letters
from devtools.ops.dlq.journal import Journal, JournalBusyError
from devtools.ops.dlq.scan import DEFAULT_HOLD_SECONDS
from devtools.paths import REPLAY_DIR
from devtools.queue_spec import QueueSpec, consumer_timeout_seconds, stage_environment

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

# Past the consumer's timeout, for clocks that differ a little between this machine and AWS.
IN_FLIGHT_MARGIN_SECONDS: Final = 5.0
OPTIONS: Final[dict[Kind, str]] = {"endpoint_id": "--endpoint-id", "user_id": "--user-id"}


def now_text(clock: Callable[[], float] = time.time) -> str:
    """ISO 8601 UTC with milliseconds, as every time pixel-relay writes."""
    moment = datetime.fromtimestamp(clock(), UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def seconds_of(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


@dataclass(frozen=True)
class Listing:
    """One id on the suppression list: since when, and which destinations were sent its
    erasure record."""

    kind: Kind
    value: str
    erased_at: str
    announced: frozenset[str]
    added: bool  # this run put it there

    @property
    def visitor(self) -> Visitor:
        if self.kind == "endpoint_id":
            return Visitor(endpoint_id=self.value, erased_at=self.erased_at)
        return Visitor(user_id=self.value, erased_at=self.erased_at)

    def describe(self) -> str:
        return f"{self.kind.replace('_', ' ')} {self.value}"


class ErasureList:
    """The operator's side of the suppression list: it writes, the consumer reads. An item
    is `id` (the digest `chalicelib.erasure.suppression_key`), `kind`, `erased_at` and
    `announced` (a string set of destination names); never the id itself."""

    def __init__(self, client: DynamoDBClient, table: str) -> None:
        self._client = client
        self.table = table

    def add(self, kind: Kind, value: str, erased_at: str) -> Listing:
        """Put the id on the list, or read the item an earlier run put there."""
        key = suppression_key(kind, value)
        try:
            self._client.put_item(
                TableName=self.table,
                Item={"id": {"S": key}, "kind": {"S": kind}, "erased_at": {"S": erased_at}},
                ConditionExpression="attribute_not_exists(id)",
            )
            return Listing(kind, value, erased_at, frozenset(), added=True)
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise
        item = self._client.get_item(
            TableName=self.table, Key={"id": {"S": key}}, ConsistentRead=True
        )["Item"]
        announced = frozenset(item.get("announced", {}).get("SS", []))
        return Listing(kind, value, str(item["erased_at"]["S"]), announced, added=False)

    def announced(self, listing: Listing, destination: str) -> None:
        """Remember that `destination` was sent the id's erasure record."""
        self._client.update_item(
            TableName=self.table,
            Key={"id": {"S": suppression_key(listing.kind, listing.value)}},
            UpdateExpression="ADD announced :destination",
            ExpressionAttributeValues={":destination": {"SS": [destination]}},
        )


@dataclass
class ForgetPlan:
    """Everything one run needs; tests build it with clients on local servers."""

    stage: str
    ids: list[tuple[Kind, str]]
    erasure_list: ErasureList
    destinations: list[Destination]
    sqs: SQSClient
    dead_letter_queue: str
    journal: Journal
    in_flight_seconds: float
    hold_seconds: int = DEFAULT_HOLD_SECONDS
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep


def run_forget(plan: ForgetPlan, out: IO[str]) -> int:
    """The four steps of the module's docstring; 0 when everything is done, 1 when a place
    is left to finish (each such line says so)."""
    listed_at = now_text(plan.clock)
    listings = [plan.erasure_list.add(kind, value, listed_at) for kind, value in plan.ids]
    print(f"forgetting on stage {plan.stage}:", file=out)
    for listing in listings:
        when = (
            "added: the consumer drops their events from now on"
            if listing.added
            else f"on it since {listing.erased_at}"
        )
        print(
            f"  suppression list {plan.erasure_list.table}: {listing.describe()} {when}", file=out
        )
    _wait_for_batches_in_flight(plan, listings, out)
    left: list[str] = []
    for listing in listings:
        print(f"{listing.describe()}:", file=out)
        for destination in plan.destinations:
            line = _forget_at(plan, destination, listing)
            print(f"  {destination.name}: {line}", file=out)
            if line.startswith("NOT DONE"):
                left.append(destination.name)
    left += _dead_letters(plan, out)
    if left:
        print(
            f"not finished: {', '.join(dict.fromkeys(left))}; run the same command again", file=out
        )
        return 1
    print("done", file=out)
    return 0


def _wait_for_batches_in_flight(
    plan: ForgetPlan, listings: Sequence[Listing], out: IO[str]
) -> None:
    """Until the consumer's timeout has passed since the last id was listed: a batch read
    before that may still be writing what the next steps delete."""
    until = max(seconds_of(listing.erased_at) for listing in listings) + plan.in_flight_seconds
    remaining = until - plan.clock()
    if remaining > 0:
        print(
            f"  waiting {remaining:.0f} s for consumer batches that read the list before it"
            " changed (the consumer's timeout)",
            file=out,
            flush=True,
        )
        plan.sleep(remaining)


def _forget_at(plan: ForgetPlan, destination: Destination, listing: Listing) -> str:
    """One destination's part for one id, as the line to print."""
    if destination.announces_erasure and destination.name in listing.announced:
        return (
            f"erasure record sent on an earlier run (erased_at {listing.erased_at}): not sent again"
        )
    outcome = destination.forget(listing.visitor)
    if outcome.verdict is not Verdict.DELIVERED:
        return f"NOT DONE: {outcome.reason}"
    if destination.announces_erasure:
        plan.erasure_list.announced(listing, destination.name)
    return outcome.reason


def _dead_letters(plan: ForgetPlan, out: IO[str]) -> list[str]:
    """The dead-letter queue's part for every id at once; what is left to do."""
    endpoint_ids = [value for kind, value in plan.ids if kind == "endpoint_id"]
    user_ids = [value for kind, value in plan.ids if kind == "user_id"]
    name = "dead-letter queue"
    try:
        url = plan.sqs.get_queue_url(QueueName=plan.dead_letter_queue)["QueueUrl"]
        # A replay from this machine would hold messages the scan must read. What the
        # replay's journal says of a message deleted here (sent, or in doubt) no longer
        # matters: it is gone from the queue, so the entry goes too.
        with plan.journal.lock():
            erased = erase_dead_letters(plan.sqs, url, endpoint_ids, user_ids, plan.hold_seconds)
            plan.journal.deleted(erased.deleted_ids)
    except JournalBusyError:
        print(
            f"{name} {plan.dead_letter_queue}: NOT DONE: a replay of it is running on this"
            " machine; run the same command again once it has finished",
            file=out,
        )
        return [name]
    for line in erased.render(plan.dead_letter_queue):
        print(line, file=out)
    return [] if erased.complete else [name]


# The command line (devtools.ops.cli adds the subcommand) ------------------------------------


def add_parser(commands: Any, common: Callable[[argparse.ArgumentParser], None]) -> None:
    forget = commands.add_parser(
        "forget",
        help="forget a visitor (GDPR/CCPA erasure): profiles, queues, downstream stores",
        description="Put the ids on the suppression list the consumer checks, delete the"
        " visitor's Customer Profiles profiles and objects and Pinpoint endpoints, send an"
        " erasure record to the stream destinations and delete their dead letters. Rerunning"
        " it is harmless (docs/erasure.md).",
    )
    common(forget)
    forget.add_argument(
        "--endpoint-id", action="append", default=[], help="an endpoint id of theirs; repeatable"
    )
    forget.add_argument(
        "--user-id", action="append", default=[], help="a user id of theirs; repeatable"
    )
    forget.add_argument(
        "--hold",
        type=int,
        default=DEFAULT_HOLD_SECONDS,
        help="seconds each dead letter stays hidden while the scan runs (default %(default)s)",
    )
    forget.add_argument("--in-flight-seconds", type=float, help=argparse.SUPPRESS)
    forget.add_argument("--journal", type=Path, help=argparse.SUPPRESS)


def ids_from(args: argparse.Namespace) -> list[tuple[Kind, str]]:
    """The ids given, each checked as the pixel checks it (one line naming the option)."""
    given: list[tuple[Kind, str]] = [
        *(("endpoint_id", value) for value in args.endpoint_id),
        *(("user_id", value) for value in args.user_id),
    ]
    if not given:
        raise SystemExit("forget needs --endpoint-id or --user-id (either may repeat)")
    for kind, value in given:
        try:
            identifier(kind, value)
        except FieldError as error:
            raise SystemExit(f"{OPTIONS[kind]} {value!r}: {error.rule}") from None
    return list(dict.fromkeys(given))


def forget_plan(args: argparse.Namespace, ops: Any) -> ForgetPlan:
    """The run's plan from the stage's settings; SystemExit with one line when the stage
    cannot be forgotten on (erasure off, a destination's settings missing)."""
    ids = ids_from(args)
    environment = stage_environment(args.stage, args.project_dir)
    try:
        settings = Settings.from_env(environment)
        erasure = ErasureSettings.from_env(environment)
        plugins = registry.configure(settings.destinations, environment)
    except ConfigError as error:
        raise SystemExit(f"stage {args.stage}: {error}") from None
    if erasure.table is None:
        raise SystemExit(
            f"stage {args.stage}: erasure is off: set {TABLE_VARIABLE} (docs/settings.md) and"
            " deploy, so that the consumer drops the visitor's queued and replayed events;"
            " forget refuses to erase while they would be written again"
        )
    spec = QueueSpec.for_stage(args.stage, args.project_dir)
    in_flight = args.in_flight_seconds
    if in_flight is None:
        in_flight = (
            consumer_timeout_seconds(args.stage, args.project_dir) + IN_FLIGHT_MARGIN_SECONDS
        )
    project_dir: Path = args.project_dir
    return ForgetPlan(
        stage=args.stage,
        ids=ids,
        erasure_list=ErasureList(ops.client("dynamodb"), erasure.table),
        destinations=[plugin.create() for plugin in plugins],
        sqs=ops.sqs,
        dead_letter_queue=spec.dead_letter_queue,
        journal=Journal(
            args.journal or project_dir / REPLAY_DIR / f"{spec.dead_letter_queue}.journal"
        ),
        in_flight_seconds=in_flight,
        hold_seconds=args.hold,
    )


def forget_command(args: argparse.Namespace, ops: Any, out: IO[str], err: IO[str]) -> int:
    plan = forget_plan(args, ops)
    try:
        return run_forget(plan, out)
    except (ClientError, BotoCoreError) as error:
        raise SystemExit(f"forget stopped: {_one_line(error, plan)}") from None


def _one_line(error: Exception, plan: ForgetPlan) -> str:
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        if code == "ResourceNotFoundException" and error.operation_name in {
            "PutItem",
            "GetItem",
            "UpdateItem",
        }:
            return (
                f"{TABLE_VARIABLE} {plan.erasure_list.table} does not exist in this account and"
                f" region: deploy stage {plan.stage} (make deploy STAGE={plan.stage}, or its"
                " stack), which creates it"
            )
    return str(error)
