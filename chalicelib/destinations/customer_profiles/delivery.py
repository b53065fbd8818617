"""Writing a batch: `BatchPutProfileObject` calls of up to 10 objects, every answer read.

A batch's calls are planned in lanes (`planning`): a lane's calls go one after the other,
and up to PROFILES_WRITE_THREADS lanes go at once on the consumer's pool, so a batch of
100 at 300 ms a call takes about a second, not thirty. A request refused for what it
carries (400, 413, or botocore's own validation) is halved until the object at fault stands
alone; a failure every further call would meet (a missing domain, a permission,
throttling, the network) stops the rest of the batch, which is retried.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Protocol, cast

from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from chalicelib import telemetry
from chalicelib.destinations.base import (
    Destination,
    RequestRefusedError,
    Visitor,
    build_refusal,
    client_error_outcome,
    send_halving,
    unexpected_failure,
    verdict_for_status,
)
from chalicelib.destinations.customer_profiles.erasure import ErasureClient, ProfileEraser
from chalicelib.destinations.customer_profiles.object_type import (
    DEFAULT_RULES,
    MAX_OBJECT_BYTES,
    MAX_OBJECT_CHARS,
    ObjectRules,
    profile_attributes,
    profile_identity,
    profile_object,
)
from chalicelib.destinations.customer_profiles.planning import Item, plan_calls
from chalicelib.destinations.customer_profiles.settings import (
    ACTION,
    DEFAULT_WRITE_THREADS,
    NAME,
)
from chalicelib.events import Event
from chalicelib.outcomes import Outcome, TimeLeft, Verdict

if TYPE_CHECKING:
    from concurrent.futures import Executor

# Request-level failures that every further call in the batch would meet too (a missing
# domain or object type, a missing permission, throttling): the rest is not sent.
_BATCH_WIDE_STATUSES: Final = frozenset({403, 404, 429})
# A request refused for what it carries: split until the object at fault stands alone.
_REFUSED_STATUSES: Final = frozenset({400, 413})

_Answered = list[tuple[Item, Outcome]]


class ProfilesClient(Protocol):
    """The part of boto3's "customer-profiles" client the destination uses."""

    def batch_put_profile_object(
        self,
        *,
        DomainName: str,  # noqa: N803 (boto3's parameter names)
        ObjectTypeName: str,  # noqa: N803
        Items: list[dict[str, str]],  # noqa: N803
    ) -> Mapping[str, Any]: ...


@dataclass
class _Stop:
    """Shared by a batch's workers: set by a failure every further call would meet."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    outcome: Outcome | None = None

    def get(self) -> Outcome | None:
        with self.lock:
            return self.outcome

    def set(self, reason: str) -> None:
        with self.lock:
            if self.outcome is None:
                self.outcome = Outcome(Verdict.RETRY, f"not sent after {reason}")


@dataclass
class _Lane:
    """One lane's work: its calls in order, and how many requests it made."""

    calls: list[list[Item]]
    made: int = 0


class CustomerProfilesDestination(Destination):
    """Records events in one Customer Profiles domain, up to 10 objects a call."""

    name = NAME

    def __init__(
        self,
        client: ProfilesClient,
        domain: str,
        object_type: str,
        call_budget_ms: int = 0,
        write_threads: int = DEFAULT_WRITE_THREADS,
        pool: Executor | None = None,
        rules: ObjectRules = DEFAULT_RULES,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        """`call_budget_ms`: the longest one call can take, retries included; no call is
        started with less Lambda time left than that. `write_threads`: lanes in flight on
        `pool` (the consumer's); without a pool, one call after another. `rules`: the
        slots a profile keeps and the trigger expiration the objects carry; `clock`: the
        delivery time `on_time` is measured at."""
        self._client = client
        self._domain = domain
        self._object_type = object_type
        self._call_budget_ms = call_budget_ms
        self._write_threads = max(1, write_threads)
        self._pool = pool
        self._rules = rules
        self._clock = clock

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        outcomes: list[Outcome] = [Outcome(Verdict.RETRY, "not sent")] * len(events)
        items: list[Item] = []
        now = self._clock()
        carried = newest_attributes(events)
        for index, event in enumerate(events):
            built = _build(event, self._rules, now, carried[index])
            if isinstance(built, Outcome):
                outcomes[index] = built
            else:
                items.append(Item(index, event, built))
        lanes = [_Lane(calls) for calls in plan_calls(items)]
        stop = _Stop()
        answered = self._run_lanes(lanes, time_left, stop)
        for lane_answers in answered:
            for item, outcome in lane_answers:
                outcomes[item.index] = outcome
        made = sum(lane.made for lane in lanes)
        if made:
            telemetry.count("BatchPutProfileObjectCalls", made)
        return [
            _with_profile(outcome, event) for outcome, event in zip(outcomes, events, strict=True)
        ]

    def forget(self, visitor: Visitor, time_left: TimeLeft = None) -> Outcome:
        """The visitor's profiles and pixel-relay's objects on them, deleted (`erasure`)."""
        client = cast(ErasureClient, self._client)  # boto3's client has every operation
        return ProfileEraser(client, self._domain, self._object_type).forget(visitor)

    def _run_lanes(self, lanes: list[_Lane], time_left: TimeLeft, stop: _Stop) -> list[_Answered]:
        """Every lane's outcomes, in lane order: at most `write_threads` lanes at once."""
        workers = min(self._write_threads, len(lanes))
        if self._pool is None or workers <= 1:
            return [self._run_lane(lane, time_left, stop) for lane in lanes]
        answered: list[_Answered] = [[] for _ in lanes]
        waiting = iter(range(len(lanes)))
        lock = threading.Lock()

        def work() -> None:
            while True:
                with lock:
                    index = next(waiting, None)
                if index is None:
                    return
                answered[index] = self._run_lane(lanes[index], time_left, stop)

        for future in [self._pool.submit(work) for _ in range(workers)]:
            future.result()
        return answered

    def _run_lane(self, lane: _Lane, time_left: TimeLeft, stop: _Stop) -> _Answered:
        """One lane's calls in order, a refused request halved (`send_halving`)."""
        answered: _Answered = []
        for call in lane.calls:
            try:
                outcomes = send_halving(
                    call, lambda items: self._send(items, lane, time_left, stop)
                )
            except Exception as error:  # a bug here costs this call's events only
                outcomes = [unexpected_failure(NAME, ACTION, error)] * len(call)
            answered.extend(zip(call, outcomes, strict=True))
        return answered

    def _send(
        self, call: Sequence[Item], lane: _Lane, time_left: TimeLeft, stop: _Stop
    ) -> list[Outcome]:
        """One call's outcomes (one per item); raises RequestRefusedError for a request
        refused for what it carries."""
        stopped = stop.get()
        if stopped is not None:
            return [stopped] * len(call)
        if time_left is not None and time_left() < self._call_budget_ms:
            return [Outcome(Verdict.RETRY, "out of time")] * len(call)
        request = [{"Id": str(n), "Object": item.body} for n, item in enumerate(call)]
        try:
            response = self._client.batch_put_profile_object(
                DomainName=self._domain, ObjectTypeName=self._object_type, Items=request
            )
        except ClientError as error:
            lane.made += 1
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            if status in _REFUSED_STATUSES:
                # The code, never the message: it may quote an id (docs/operations.md#logs).
                code = error.response.get("Error", {}).get("Code", "")
                raise RequestRefusedError(f"{ACTION} refused: {status} {code}".strip()) from error
            # Other 4xx included (a missing domain, object type or permission): retried, so
            # after maxReceiveCount the redrive policy parks the message where an operator
            # finds it, rather than losing it here.
            outcome = client_error_outcome(error, ACTION)
            if status in _BATCH_WIDE_STATUSES:
                stop.set(outcome.reason)
            return [outcome] * len(call)
        except ParamValidationError as error:
            # botocore refused the request before sending: no retry can fix the object.
            raise RequestRefusedError(build_refusal(NAME, "request", error)) from error
        except BotoCoreError as error:
            # Connection failures and timeouts, after the client's own retries.
            lane.made += 1
            outcome = Outcome(Verdict.RETRY, f"{ACTION} failed: {type(error).__name__}")
            stop.set(outcome.reason)
            return [outcome] * len(call)
        except Exception as error:  # this call's failure, not the batch's
            lane.made += 1
            return [unexpected_failure(NAME, ACTION, error)] * len(call)
        lane.made += 1
        return item_outcomes(len(call), response)


def item_outcomes(count: int, response: Mapping[str, Any]) -> list[Outcome]:
    """Each item's outcome from a BatchPutProfileObject answer: listed as successful,
    delivered; failed with 429, 5xx or an unreadable code, or not listed at all, retried;
    failed with another 4xx, rejected. The reason names the item's status, never the
    service's message, which may quote an id (docs/operations.md#logs)."""
    succeeded = {str(item.get("Id")) for item in response.get("Successful") or []}
    failed = {str(item.get("Id")): item for item in response.get("Failed") or []}
    outcomes: list[Outcome] = []
    for n in range(count):
        key = str(n)
        if key in failed:
            code = failed[key].get("Code")
            status = code if isinstance(code, int) and not isinstance(code, bool) else 0
            verdict = verdict_for_status(status)
            if verdict is Verdict.DELIVERED:  # a "failure" with a 2xx code: not proof
                verdict = Verdict.RETRY
            outcomes.append(Outcome(verdict, f"{ACTION} item failed: {status}"))
        elif key in succeeded:
            outcomes.append(Outcome(Verdict.DELIVERED))
        else:
            outcomes.append(Outcome(Verdict.RETRY, f"{ACTION} answered nothing for the object"))
    return outcomes


def newest_attributes(events: Sequence[Event]) -> list[frozenset[str]]:
    """For each event, the profile attributes it is the newest of its profile to write in
    this batch: only that event sends each one, so the profile ends with the newest value
    whatever order the service applies a batch's objects in (AWS does not say it orders
    them by the source timestamp). Equal times: the later in the batch is the newer."""
    newest: dict[tuple[tuple[str, str], str], tuple[str, int]] = {}
    for index, event in enumerate(events):
        identity = profile_identity(event)
        for name in profile_attributes(event):
            key = (identity, name)
            if key not in newest or (event.timestamp, index) >= newest[key]:
                newest[key] = (event.timestamp, index)
    carried: list[set[str]] = [set() for _ in events]
    for (_, name), (_, index) in newest.items():
        carried[index].add(name)
    return [frozenset(names) for names in carried]


def _build(
    event: Event, rules: ObjectRules, now: datetime, carried: frozenset[str]
) -> str | Outcome:
    """The event's object as sent, or the rejection that keeps it from any call."""
    try:
        body = json.dumps(
            profile_object(event, rules, now, carried), separators=(",", ":"), ensure_ascii=False
        )
    except Exception as error:  # this event's alone, never the batch's
        return Outcome(Verdict.REJECTED, build_refusal(NAME, "object", error))
    if len(body) > MAX_OBJECT_CHARS:
        reason = f"object is {len(body)} characters; {ACTION} accepts {MAX_OBJECT_CHARS}"
        return Outcome(Verdict.REJECTED, reason)
    if len(body.encode()) > MAX_OBJECT_BYTES:
        reason = f"object is {len(body.encode())} bytes; a profile object may have 250 KB"
        return Outcome(Verdict.REJECTED, reason)
    return body


def _with_profile(outcome: Outcome, event: Event) -> Outcome:
    """The profile update travels in the same object: it fares as the event does."""
    if event.profile.is_empty():
        return outcome
    return replace(outcome, profile=outcome.verdict, profile_reason=outcome.reason)
