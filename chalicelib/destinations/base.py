"""The destination interface: what a destination is, in one file.

A destination is one module (or package) of `chalicelib/destinations/` that exports
`PLUGIN`, a subclass of `DestinationPlugin`. Its name is its module's, with - for _
(`customer_profiles` answers to `customer-profiles` in DESTINATIONS); `registry` finds it
by listing this package, so adding a destination touches no other file of chalicelib, and
only the configured destinations are ever imported.

A plug-in declares, as class attributes, everything the app and the tools need to know:

- `name`, `service` (botocore's service name, for the region it is offered in; None for a
  destination that is not an AWS service) and `variables` (each setting's shape: variable,
  meaning, default and the botocore rules its value must pass: the request member's, an
  ARN's, the resource name's own);
- hooks into the development tools, each a dotted path resolved by devtools only (nothing
  here imports them): `double` (the dry-run double `make dev` and `make bench` use),
  `probe` (how `ops check` finds a test event there; None: it cannot be read back) and
  `resources` (CloudFormation the deploy template adds; None: none);
- `calls_per_1000_events`: the downstream calls `make bench` expects for 1,000 events;
- `call_metric`: the `PixelRelay` metric counting those calls (the stack's dashboard).

and implements three methods on its own typed settings: `parse` (the stage's environment
into its settings, failing with the variable's name), `create` (the `Destination` that
delivers, on whatever transport it likes: a boto3 client, an HTTPS endpoint with a secret)
and `iam_statements` (what the consumer's role needs, on the destination's resources only).
docs/destinations/README.md walks through adding one.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import (
    TYPE_CHECKING,
    Any,
    ClassVar,
    Final,
    Generic,
    NotRequired,
    Self,
    TypedDict,
    TypeVar,
)

from chalicelib import telemetry
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from chalicelib.service_models import ModelPath


@dataclass(frozen=True)
class Setting:
    """One environment variable a destination reads, as deploy preflight, docs/settings.md
    and the tools describe it, with the shapes botocore's model gives its value, each a
    place in the model: (service, operation, member, ...)."""

    variable: str
    meaning: str
    default: str | None = None  # None: required
    # The request member the value is sent as.
    model: ModelPath | None = None
    # A value starting with arn: is sent as this member instead (a stream's ARN, say); the
    # resource name it ends with (after its last /) must then pass `model` too.
    arn_model: ModelPath | None = None
    # The resource's own name, where it is narrower than the request member (PutEvents takes
    # a bus's name or ARN, up to 1,600 characters; a bus's name has 256): checked on the
    # value, or on the name an ARN ends with.
    name_model: ModelPath | None = None

    def read(self, environ: Mapping[str, str]) -> str:
        """The value (or the default), checked against every shape declared; a missing or
        refused value raises ConfigError naming the variable (and the shape)."""
        value = environ.get(self.variable, "").strip() or self.default
        if value is None:
            raise ConfigError(self.variable, "is required; set it in .chalice/config.json")
        from chalicelib.service_models import model_rule

        arn = value.startswith("arn:")
        whole = self.arn_model if arn and self.arn_model is not None else self.model
        name_path = self.name_model or (self.model if arn and self.arn_model else None)
        # A name is held to its own (narrower) shape first; an ARN to the member's first.
        checks: list[tuple[ModelPath | None, str, str]] = [
            (whole, value, ""),
            (name_path, value.rsplit("/", 1)[-1] if arn else value, "the name in the ARN "),
        ]
        if not arn:
            checks.reverse()
        for path, checked, prefix in checks:
            problem = None if path is None else model_rule(*path).problem(checked)
            if problem is not None:
                raise ConfigError(self.variable, (prefix if arn else "") + problem)
        return value


class Statement(TypedDict):
    """One IAM policy statement, as `make policies` writes it."""

    Sid: str
    Effect: str
    Action: list[str]
    Resource: str | list[str]
    Condition: NotRequired[dict[str, Any]]


@dataclass(frozen=True)
class Visitor:
    """Someone to forget (erasure): an endpoint id, a user id, or both."""

    endpoint_id: str | None = None
    user_id: str | None = None
    # When the erasure was first asked for (ISO 8601 UTC with milliseconds): the time of the
    # erasure record, the same on every run of `forget` for this visitor.
    erased_at: str | None = None


ERASURE_EVENT_TYPE: Final = "_erasure"


class ErasureRecord(TypedDict):
    """What a stream destination is sent when a visitor is forgotten (docs/erasure.md): the
    field names of `EventRecord`, so that one table over a stream reads both, and an event
    type no event can have (the pixel refuses event types starting with _)."""

    event_type: str  # ERASURE_EVENT_TYPE
    endpoint_id: str | None
    user_id: str | None
    erased_at: str | None


def erasure_record(visitor: Visitor) -> ErasureRecord:
    return {
        "event_type": ERASURE_EVENT_TYPE,
        "endpoint_id": visitor.endpoint_id,
        "user_id": visitor.user_id,
        "erased_at": visitor.erased_at,
    }


def erasure_json(visitor: Visitor) -> str:
    """The erasure record as compact JSON, as `record_json` writes an event."""
    return json.dumps(erasure_record(visitor), ensure_ascii=False, separators=(",", ":"))


def erasure_line(visitor: Visitor) -> bytes:
    """The erasure record as one line of JSON, newline included, as `record_line`."""
    return erasure_json(visitor).encode() + b"\n"


def announce(destination: str, send: Callable[[], Sequence[Outcome]]) -> Outcome:
    """`forget` for a destination that streams to stores pixel-relay cannot reach: the one
    erasure record `send` sends (its outcomes, one item), as an Outcome an operator reads."""
    from botocore.exceptions import ParamValidationError

    try:
        [outcome] = send()
    except ParamValidationError as error:
        return Outcome(Verdict.REJECTED, build_refusal(destination, "erasure record", error))
    except Exception as error:  # reported to the operator, who runs the command again
        return unexpected_failure(destination, "erasure record", error)
    if outcome.verdict is Verdict.DELIVERED:
        return Outcome(Verdict.DELIVERED, "erasure record sent")
    return outcome


class Destination(ABC):
    """What a plug-in creates: a service that records events.

    `deliver` never raises for a service failure: it answers RETRY for the events concerned
    instead. It starts no call it cannot finish before `time_left` runs out: those events are
    answered RETRY too. An event whose request cannot be built is that event's rejection
    (`build_refusal`), never the batch's. `time_left` is what the destination may spend: the
    consumer has already taken off the time it needs afterwards to settle the batch."""

    name: str  # as DESTINATIONS names it
    # True when `forget` sends an erasure record downstream (a new record every call) rather
    # than erasing in place: `make ops ARGS="forget ..."` then sends it once per visitor.
    announces_erasure: ClassVar[bool] = False

    @abstractmethod
    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        """Outcomes in the order of `events`."""

    def forget(self, visitor: Visitor, time_left: TimeLeft = None) -> Outcome:
        """Erase or announce the erasure of what this destination holds of `visitor`:
        DELIVERED when done (or nothing to do), RETRY when it should be tried again,
        REJECTED when it cannot be done here. By default a destination keeps nothing it
        could erase; one that stores per visitor, or streams to stores that do, says so."""
        return Outcome(Verdict.DELIVERED, f"{self.name} keeps nothing to erase")


SettingsT = TypeVar("SettingsT", covariant=True)


class DestinationPlugin(ABC, Generic[SettingsT]):
    """One destination as the app and the tools see it (see the module's docstring).

    The class declares and parses; an instance is the plug-in configured for one stage
    (`configure(environ)`), holding its parsed settings."""

    name: ClassVar[str]
    service: ClassVar[str | None]
    variables: ClassVar[tuple[Setting, ...]]
    double: ClassVar[str]  # a devtools module with `start(setup)` (devtools.localstack.doubles)
    probe: ClassVar[str | None] = None  # "module:callable", (environ, client) -> probe
    resources: ClassVar[str | None] = None  # "module:callable", environ -> CloudFormation
    calls_per_1000_events: ClassVar[float | None] = None  # None: measured, no target
    call_metric: ClassVar[str | None] = None  # the metric its calls are counted in

    def __init__(self, settings: SettingsT) -> None:
        self._settings = settings

    @property
    def settings(self) -> SettingsT:
        return self._settings

    @classmethod
    def configure(cls, environ: Mapping[str, str]) -> Self:
        """The plug-in with its settings read from `environ` (ConfigError if one is wrong)."""
        return cls(cls.parse(environ))

    @classmethod
    @abstractmethod
    def parse(cls, environ: Mapping[str, str]) -> SettingsT:
        """Its own settings from a stage's environment, failing with the variable's name."""

    @abstractmethod
    def create(self, pool: Executor | None = None) -> Destination:
        """The destination that delivers (no network call here: it connects on use).
        `pool`: the consumer's threads, for a destination that sends a batch's calls at
        once; None sends one call after another."""

    @abstractmethod
    def iam_statements(self) -> list[Statement]:
        """What the consumer's role needs for it, on its own resources only (`own_arn`);
        [] for a destination that is not an AWS service."""

    def erasure_statements(self) -> list[Statement]:
        """What the operator who runs `make ops ARGS="forget ..."` needs for its `forget`,
        on its own resources only; [] when it keeps nothing to erase."""
        return []


# Helpers for destinations that call AWS APIs -----------------------------------------------


def own_arn(service: str, resource: str) -> str:
    """The ARN of one of the stage's own resources, for `iam_statements`: partition, region
    and account are CloudFormation's pseudo parameters, filled in by the CloudFormation path
    (`Fn::Sub`) and by `make policies` for the `chalice deploy` path (docs/deploy.md). A
    statement never spells `arn:*:...:*:*:` itself: `make policies` refuses it."""
    return f"arn:${{AWS::Partition}}:{service}:${{AWS::Region}}:${{AWS::AccountId}}:{resource}"


def verdict_for_status(status: int) -> Verdict:
    """Per-item HTTP-like status: 2xx delivered; 429, 5xx and anything unknown (no status,
    1xx, 3xx) retried; any other 4xx rejected."""
    if 200 <= status < 300:
        return Verdict.DELIVERED
    if 400 <= status < 500 and status != 429:
        return Verdict.REJECTED
    return Verdict.RETRY


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
    telemetry.failure(
        "destination call failed unexpectedly", error, destination=destination, action=action
    )
    return Outcome(Verdict.RETRY, f"{destination} {action} failed: {type(error).__name__}")


class RequestRefusedError(Exception):
    """When a service (or botocore, before sending) refuses a request for what one of its
    items carries: `send_halving` splits the request until that item stands alone."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason  # the rejection of the item at fault, once it stands alone


def send_halving(
    items: Sequence[_Item], send: Callable[[Sequence[_Item]], list[Outcome]]
) -> list[Outcome]:
    """`send`'s outcomes for `items` (one each, in order). When `send` raises
    RequestRefusedError, the items are sent again in two halves, each halved in turn, until the
    item at fault stands alone and is rejected with the reason: one bad item costs only
    itself. Halves go in order, the first half's calls before the second's."""
    try:
        return send(items)
    except RequestRefusedError as refused:
        if len(items) == 1:
            return [Outcome(Verdict.REJECTED, refused.reason)]
        middle = len(items) // 2
        return send_halving(items[:middle], send) + send_halving(items[middle:], send)


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

    `send` lets botocore's `ParamValidationError` through: the batch is then halved
    (`send_halving`) until the item at fault stands alone and is rejected. Any other
    exception from `send` retries that batch only."""
    from botocore.exceptions import ParamValidationError

    def call(members: Sequence[int]) -> list[Outcome]:
        if time_left is not None and time_left() < call_budget_ms:
            return [Outcome(Verdict.RETRY, "out of time")] * len(members)
        try:
            answers = send([items[i] for i in members])
            if len(answers) != len(members):
                raise RuntimeError(f"{len(answers)} answers for {len(members)} items")
        except ParamValidationError as error:
            raise RequestRefusedError(build_refusal(destination, "request", error)) from error
        except Exception as error:  # this batch's failure, not the others'
            return [unexpected_failure(destination, "call", error)] * len(members)
        return answers

    max_count, max_bytes = limits
    outcomes: list[Outcome] = [
        DELIVERED if refusal is None else Outcome(Verdict.REJECTED, refusal) for refusal in refusals
    ]
    sendable = [index for index, refusal in enumerate(refusals) if refusal is None]
    for batch in pack([sizes[i] for i in sendable], max_count, max_bytes):
        members = [sendable[i] for i in batch]
        for index, outcome in zip(members, send_halving(members, call), strict=True):
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
    """One line of JSON, newline included: the record a stream destination writes, so that
    records concatenated by a delivery stream read as newline-delimited JSON."""
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
