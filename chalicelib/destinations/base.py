"""The destination interface: a batch of events in, one outcome per event out."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from chalicelib import telemetry
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict


def verdict_for_status(status: int) -> Verdict:
    """Per-item HTTP-like status: 2xx delivered; 429, 5xx and anything unknown (no status,
    1xx, 3xx) retried; any other 4xx rejected."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if 400 <= status < 500 and status != 429:
        return Verdict.REJECTED
    return Verdict.RETRY


class Destination(Protocol):
    """A service that records events. `deliver` never raises for a service failure:
    it answers RETRY for the events concerned instead. It starts no call it cannot finish
    before `time_left` runs out: those events are answered RETRY too. An event whose request
    cannot be built is that event's rejection (`build_refusal`), never the batch's.

    `time_left` is what the destination may spend: the consumer has already taken off the
    time it needs afterwards to settle the batch with SQS."""

    name: str

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        """Outcomes in the order of `events`."""
        ...


SettingsT = TypeVar("SettingsT")
ClientT = TypeVar("ClientT")
# One IAM policy statement, as `make policies` writes it (Sid, Effect, Action, Resource).
Statement = dict[str, Any]


def own_arn(service: str, resource: str) -> str:
    """The ARN of one of the stage's own resources, for `iam_statements`: partition, region
    and account are CloudFormation's pseudo parameters, filled in by the CloudFormation path
    (`Fn::Sub`) and by `make policies` for the `chalice deploy` path (docs/deploy.md). A
    statement never spells `arn:*:...:*:*:` itself: `make policies` refuses it."""
    return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"


@dataclass(frozen=True)
class DestinationSpec(Generic[SettingsT, ClientT]):
    """Everything pixel-relay and its tooling know about one destination, exported by its
    module as `SPEC`: the consumer builds it, `make policies` grants it and the dry run stands
    in for it from this one object, so nothing elsewhere checks a destination's name."""

    name: str  # as DESTINATIONS names it: the module's name with - for _
    settings: type[SettingsT]  # its own settings, read from the stage's environment...
    from_env: Callable[[Mapping[str, str]], SettingsT]  # ...failing with the variable's name
    client: Callable[[SettingsT], ClientT]  # its boto3 client (`service_client`)
    destination: Callable[[ClientT, SettingsT], Destination]  # requests out, results read
    # What the consumer's role needs for it, on its own resources only.
    iam_statements: Callable[[SettingsT], list[Statement]]

    def create(self, settings: SettingsT) -> Destination:
        """The destination on a client of its own (no AWS call: boto3 connects on use)."""
        return self.destination(self.client(settings), settings)


def pack(sizes: Sequence[int], max_count: int, max_bytes: int) -> list[list[int]]:
    """Indexes of items packed in order into batches of at most `max_count` items and
    `max_bytes` bytes (an item over `max_bytes` alone still gets a batch of its own: the
    caller refuses it before packing)."""
    batches: list[list[int]] = []
    current: list[int] = []
    total = 0
    for index, size in enumerate(sizes):
        if current and (len(current) >= max_count or total + size > max_bytes):
            batches.append(current)
            current, total = [], 0
        current.append(index)
        total += size
    if current:
        batches.append(current)
    return batches


_Item = TypeVar("_Item")
_Built = TypeVar("_Built")


def build_refusal(destination: str, what: str, error: Exception) -> str:
    """The reason an event's request could not be built: the error's type and the
    destination, never the value (it may be an identifier)."""
    return f"{destination} could not build the {what}: {type(error).__name__}"


def build_each(
    events: Sequence[Event], build: Callable[[Event], _Built], destination: str, what: str
) -> tuple[list[_Built | None], list[str | None]]:
    """Each event's request part, or the refusal that rejects that event alone: one field
    that got past decode and that the builder cannot take must not fail the batch."""
    built: list[_Built | None] = []
    refusals: list[str | None] = []
    for event in events:
        try:
            built.append(build(event))
            refusals.append(None)
        except Exception as error:  # any builder error is this event's alone
            built.append(None)
            refusals.append(build_refusal(destination, what, error))
    return built, refusals


def unexpected_failure(destination: str, action: str, error: Exception) -> Outcome:
    """A call that raised something no branch expected (a bug, a library surprise): retried,
    with the traceback logged, for the events of that call only."""
    telemetry.logger.exception(
        "destination call failed unexpectedly",
        extra={"destination": destination, "action": action, "error": type(error).__name__},
    )
    return Outcome(Verdict.RETRY, f"{destination} {action} failed: {type(error).__name__}")


def deliver_packed(
    items: Sequence[_Item],
    sizes: Sequence[int],
    refusals: Sequence[str | None],
    limits: tuple[int, int],
    send: Callable[[list[_Item]], list[Outcome]],
    time_left: TimeLeft,
    call_budget_ms: int,
    destination: str = "",
) -> list[Outcome]:
    """One outcome per item: items with a refusal (too large for the service, or not
    buildable) are rejected without a call; the rest go in order, in batches within
    `limits` (items and bytes a call). No call starts with less Lambda time left than its
    worst case.

    `send` lets botocore's `ParamValidationError` through: the batch is then halved until
    the item at fault stands alone and is rejected, so one bad item costs only itself. Any
    other exception from `send` retries that batch only."""
    from botocore.exceptions import ParamValidationError

    max_count, max_bytes = limits
    outcomes: list[Outcome] = [
        DELIVERED if refusal is None else Outcome(Verdict.REJECTED, refusal) for refusal in refusals
    ]
    sendable = [index for index, refusal in enumerate(refusals) if refusal is None]
    pending = [
        [sendable[i] for i in batch]
        for batch in pack([sizes[i] for i in sendable], max_count, max_bytes)
    ]
    while pending:
        members = pending.pop(0)
        answers: list[Outcome]
        if time_left is not None and time_left() < call_budget_ms:
            answers = [Outcome(Verdict.RETRY, "out of time")] * len(members)
        else:
            try:
                answers = send([items[i] for i in members])
                if len(answers) != len(members):
                    raise RuntimeError(f"{len(answers)} answers for {len(members)} items")
            except ParamValidationError as error:
                if len(members) > 1:
                    middle = len(members) // 2
                    pending[:0] = [members[:middle], members[middle:]]
                    continue
                answers = [Outcome(Verdict.REJECTED, build_refusal(destination, "request", error))]
            except Exception as error:  # this batch's failure, not the others'
                answers = [unexpected_failure(destination, "call", error)] * len(members)
        for index, outcome in zip(members, answers, strict=True):
            outcomes[index] = outcome
    return outcomes


def read_answers(
    call: Callable[[], Mapping[str, Any]],
    action: str,
    answers_key: str,
    what: str,
    count: int,
    outcome: Callable[[Mapping[str, Any]], Outcome],
) -> list[Outcome]:
    """The outcomes of one call that answers item by item (`count` items sent): each answer
    under `answers_key` read by `outcome`. A request-level failure retries every item
    (`client_error_outcome`), and so does an answer list of another length. botocore's
    `ParamValidationError` goes through: `deliver_packed` halves the batch to find the item
    at fault."""
    from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

    try:
        response = call()
    except ParamValidationError:
        raise
    except (ClientError, BotoCoreError) as error:
        return [client_error_outcome(error, action)] * count
    answers = response.get(answers_key, [])
    if len(answers) != count:
        return [Outcome(Verdict.RETRY, f"{action} answered for other {what}")] * count
    return [outcome(answer) for answer in answers]


def record_json(event: Event) -> str:
    """`Event.to_record()` as compact JSON, non-ASCII kept as it is."""
    return json.dumps(event.to_record(), ensure_ascii=False, separators=(",", ":"))


def record_line(event: Event) -> bytes:
    """One line of JSON, newline included: what Firehose writes to S3 for the event, and
    what a Kinesis record carries (so a Firehose stream reading it writes the same)."""
    return record_json(event).encode() + b"\n"


def client_error_outcome(error: Exception, action: str) -> Outcome:
    """A request-level failure: retried, so a missing resource or permission ends on the
    dead-letter queue through the redrive policy rather than being lost."""
    response = getattr(error, "response", {}) or {}
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    code = response.get("Error", {}).get("Code", type(error).__name__)
    return Outcome(Verdict.RETRY, f"{action} failed: {status} {code}".replace("  ", " "))


def call_budget_ms(timeout_seconds: int, attempts: int = 3) -> int:
    """The longest one destination call can take on a `service_client` (attempts, 2 s
    connect and the read timeout each, backoff): no call starts with less Lambda time. The
    time to settle the batch afterwards is the consumer's own reserve
    (`settlement.settlement_reserve_ms`), already taken off the time a destination is given."""
    return (attempts * (2 + timeout_seconds) + 3) * 1000


def service_client(service: str, timeout_seconds: int) -> Any:
    """A destination's boto3 client: 2 s to connect, the configured read timeout, and
    botocore's standard retries (3 attempts), the worst case `call_budget_ms` plans for."""
    import boto3
    from botocore.config import Config

    config = Config(
        connect_timeout=2,
        read_timeout=timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": 3},
    )
    return boto3.client(service, config=config)  # type: ignore[call-overload]
