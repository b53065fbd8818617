"""Throughput through the local stack: pixel → moto's SQS → event-source runner → stand-in.

Phase 1 sends every hit through the app (as Lambda calls it) to moto's SQS server; phase 2
drains the queue with the local event source mapping calling `app.deliver`,
which sends PutEvents to the dry-run Pinpoint stand-in. The servers run in a process of
their own (`bench.servers`). Every AWS call is timed through botocore's `before-call` /
`after-call` events and the servers' CPU time is read at each phase boundary, so the
bottleneck can be named; a second, smaller run under cProfile lists the hottest functions
of the pixel/consumer process.
"""

from __future__ import annotations

import contextlib
import cProfile
import io
import json
import pstats
import statistics
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, TYPE_CHECKING, Any

import boto3

from bench import companion
from bench.environment import environment_patch, quiet_stdout
from bench.fakes import fresh_default_session
from bench.hits import answered_gif, proxy_event, sample_queries
from devtools.localstack.event_source import LocalEventSourceMapping, PollResult
from devtools.paths import ROOT
from devtools.queue_spec import QueueSpec

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

APPLICATION_ID = "dev-application"  # the dev stage's PINPOINT_APPLICATION_ID


@dataclass
class Servers:
    """`bench.servers` in a child process: URLs, and its running numbers on request."""

    process: subprocess.Popen[str]
    sqs_url: str
    pinpoint_url: str

    def numbers(self) -> dict[str, float]:
        numbers: dict[str, float] = companion.count(self.process)
        return numbers


@contextlib.contextmanager
def servers(log: IO[str]) -> Iterator[Servers]:
    with companion.companion(["bench.servers", APPLICATION_ID], log) as (process, line):
        if not line:
            raise RuntimeError("bench.servers exited before answering; see its log")
        urls = json.loads(line)
        yield Servers(process, urls["sqs"], urls["pinpoint"])


@dataclass
class CallTimes:
    """Wall time and count per AWS operation, from botocore's own events."""

    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    calls: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def register(self, session: boto3.session.Session) -> None:
        session.events.register("before-call", self._before)
        session.events.register("after-call", self._after)

    def _before(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        context["bench_started"] = time.perf_counter()

    def _after(self, model: Any, context: dict[str, Any], **_: Any) -> None:
        started = context.pop("bench_started", None)
        if started is not None:
            name = f"{model.service_model.service_id.hyphenize()}.{model.name}"
            self.seconds[name] += time.perf_counter() - started
            self.calls[name] += 1

    def snapshot(self) -> dict[str, tuple[float, int]]:
        return {name: (self.seconds[name], self.calls[name]) for name in self.seconds}


def _since(
    before: dict[str, tuple[float, int]], after: dict[str, tuple[float, int]]
) -> dict[str, tuple[float, int]]:
    return {
        name: (seconds - before.get(name, (0.0, 0))[0], calls - before.get(name, (0.0, 0))[1])
        for name, (seconds, calls) in after.items()
        if calls - before.get(name, (0.0, 0))[1]
    }


@dataclass
class _Stack:
    servers: Servers
    sqs: SQSClient
    events_url: str
    dead_letter_url: str
    times: CallTimes


def _create_queues(sqs: SQSClient, spec: QueueSpec) -> tuple[str, str]:
    dead_letter_url = sqs.create_queue(
        QueueName=spec.dead_letter_queue, Attributes=spec.dead_letter_attributes()
    )["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=dead_letter_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    events_url = sqs.create_queue(
        QueueName=spec.events_queue, Attributes=spec.events_attributes(arn)
    )["QueueUrl"]
    return events_url, dead_letter_url


@contextlib.contextmanager
def local_stack(log: IO[str]) -> Iterator[_Stack]:
    spec = QueueSpec.for_stage("dev", ROOT)
    with servers(log) as running:
        variables = {
            "AWS_ENDPOINT_URL_SQS": running.sqs_url,
            "AWS_ENDPOINT_URL_PINPOINT": running.pinpoint_url,
            "EVENTS_QUEUE": spec.events_queue,
            "DEAD_LETTER_QUEUE": spec.dead_letter_queue,
            "PINPOINT_APPLICATION_ID": APPLICATION_ID,
            "DESTINATIONS": "pinpoint",  # the Pinpoint stand-in is what this bench runs
        }
        times = CallTimes()
        session = boto3.session.Session()
        times.register(session)
        with environment_patch(variables), fresh_default_session(session):
            sqs: SQSClient = session.client("sqs")
            events_url, dead_letter_url = _create_queues(sqs, spec)
            yield _Stack(running, sqs, events_url, dead_letter_url, times)


def _queued(stack: _Stack, url: str) -> int:
    attributes = stack.sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return int(attributes["ApproximateNumberOfMessages"]) + int(
        attributes["ApproximateNumberOfMessagesNotVisible"]
    )


@dataclass
class _Phase:
    wall: float = 0.0
    cpu: float = 0.0
    server_cpu: float = 0.0
    calls: dict[str, tuple[float, int]] = field(default_factory=dict)
    handler: float = 0.0


@contextlib.contextmanager
def _phase(stack: _Stack, into: _Phase) -> Iterator[None]:
    server_before = stack.servers.numbers()["cpu_seconds"]
    calls_before = stack.times.snapshot()
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        into.wall += time.perf_counter() - wall
        into.cpu += time.process_time() - cpu
        for name, (seconds, calls) in _since(calls_before, stack.times.snapshot()).items():
            before_s, before_n = into.calls.get(name, (0.0, 0))
            into.calls[name] = (before_s + seconds, before_n + calls)
        into.server_cpu += stack.servers.numbers()["cpu_seconds"] - server_before


@dataclass
class _Run:
    pixel: _Phase
    consumer: _Phase
    # Median seconds of a pixel hit near the start and near the end of each burst: how the
    # cost of a send grows with the depth of the queue it goes to.
    hit_s_shallow: float
    hit_s_deep: float


def _run(stack: _Stack, count: int, batch_size: int, burst: int, seed: int) -> _Run:
    """`count` hits in bursts of `burst`: each burst is sent, then drained to the stand-in."""
    from app import app, deliver

    hits = [proxy_event(query) for query in sample_queries(count, seed=seed)]
    accepted_before = stack.servers.numbers()["accepted_events"]
    pixel, consumer = _Phase(), _Phase()
    shallow: list[float] = []
    deep: list[float] = []

    def timed_deliver(event: dict[str, Any]) -> Any:
        started = time.perf_counter()
        try:
            return deliver(event, None)
        finally:
            consumer.handler += time.perf_counter() - started

    mapping = LocalEventSourceMapping(
        stack.sqs,
        stack.events_url,
        handler=timed_deliver,
        batch_size=batch_size,
        report_batch_item_failures=False,
        redeliver_at_once=True,
        batching_window_seconds=0,
    )
    polls: list[PollResult] = []
    for start in range(0, count, burst):
        chunk = hits[start : start + burst]
        edge = max(1, len(chunk) // 10)
        answered = 0
        with _phase(stack, pixel):
            for depth, hit in enumerate(chunk):
                started = time.perf_counter()
                answered += answered_gif(app(hit, None))
                elapsed = time.perf_counter() - started
                if depth < edge:
                    shallow.append(elapsed)
                elif depth >= len(chunk) - edge:
                    deep.append(elapsed)
        if answered != len(chunk):
            raise RuntimeError(f"{len(chunk) - answered} hits were not answered with the GIF")
        wanted = start + len(chunk)
        with _phase(stack, consumer):
            for _ in range(10):  # drain() stops at the first empty poll; moto may lag
                polls.extend(mapping.drain(max_polls=len(chunk) + 10))
                if sum(poll.deleted for poll in polls) >= wanted:
                    break
    deleted = sum(poll.deleted for poll in polls)
    accepted = stack.servers.numbers()["accepted_events"] - accepted_before
    errors = [poll.error for poll in polls if poll.error]
    if deleted != count or accepted != count or errors:
        raise RuntimeError(
            f"{deleted} of {count} messages deleted, {accepted} accepted by the stand-in; "
            f"errors: {errors[:3]}"
        )
    return _Run(pixel, consumer, statistics.median(shallow), statistics.median(deep))


def _hot_functions(profile: cProfile.Profile, top: int) -> list[dict[str, Any]]:
    stats = pstats.Stats(profile, stream=io.StringIO())
    rows = []
    entries: dict[Any, Any] = stats.stats  # type: ignore[attr-defined]
    for (filename, line, function), (_, calls, own, cumulative, _) in entries.items():
        rows.append(
            {
                "function": f"{_short(filename)}:{line}({function})",
                "calls": calls,
                "own_s": round(own, 3),
                "cumulative_s": round(cumulative, 3),
            }
        )
    rows.sort(key=lambda row: -float(row["own_s"]))
    return rows[:top]


def _short(filename: str) -> str:
    """A profile entry's file, without the interpreter's or the project's directories."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    if "/lib/python3" in filename:
        return "stdlib/" + filename.split("/lib/python3", 1)[1].split("/", 1)[-1]
    root = f"{ROOT}/"
    return filename.removeprefix(root)


_SERVERS = {"sqs": "moto", "pinpoint": "the stand-in"}


def _components(pixel: _Phase, consumer: _Phase) -> dict[str, float]:
    """Where the end-to-end wall time went, in seconds: each AWS operation's round trips
    (server time included) and the code of each piece in between."""
    components: dict[str, float] = {}
    for phase in (pixel, consumer):
        for name, (seconds, _) in phase.calls.items():
            service, operation = name.split(".", 1)
            label = f"{operation} round trips ({_SERVERS.get(service, service)})"
            components[label] = components.get(label, 0.0) + seconds
    pixel_calls = sum(seconds for seconds, _ in pixel.calls.values())
    put_events = consumer.calls.get("pinpoint.PutEvents", (0.0, 0))[0]
    # The handler makes no SQS call when every event is delivered: all SQS time in the
    # consumer phase is the runner's receives and deletes.
    runner_calls = sum(seconds for seconds, _ in consumer.calls.values()) - put_events
    components["pixel: app code"] = pixel.wall - pixel_calls
    components["consumer: app.deliver code"] = consumer.handler - put_events
    components["consumer: event-source runner code"] = (
        consumer.wall - consumer.handler - runner_calls
    )
    return components


def measure(
    events: int, batch_size: int, burst: int, profile_events: int, log: IO[str]
) -> dict[str, Any]:
    with quiet_stdout(), local_stack(log) as stack:
        run = _run(stack, events, batch_size, burst, seed=23)
        left = _queued(stack, stack.events_url) + _queued(stack, stack.dead_letter_url)
        profile = cProfile.Profile()
        if profile_events:
            profile.enable()
            try:
                _run(stack, profile_events, batch_size, min(burst, profile_events), seed=29)
            finally:
                profile.disable()
    pixel, consumer = run.pixel, run.consumer
    total = pixel.wall + consumer.wall
    components = _components(pixel, consumer)
    slowest, slowest_s = max(components.items(), key=lambda item: item[1])
    waited = sum(seconds for phase in (pixel, consumer) for seconds, _ in phase.calls.values())
    server_cpu = pixel.server_cpu + consumer.server_cpu
    bottleneck = (
        f"{slowest}: {slowest_s / total:.0%} of the wall time. The servers' process (moto +"
        f" stand-in) used {server_cpu:.1f} CPU-s while the bench waited {waited:.1f} s on it;"
        f" a pixel hit takes {run.hit_s_shallow * 1000:.1f} ms on an almost empty queue and"
        f" {run.hit_s_deep * 1000:.1f} ms with {burst} messages queued"
    )
    return {
        "events_per_second": round(events / total, 1),
        "events": events,
        "burst": burst,
        "batch_size": batch_size,
        "messages_left_on_queues": left,
        "pixel_hits_per_second": round(events / pixel.wall, 1),
        "delivery_events_per_second": round(events / consumer.wall, 1),
        "pixel_wall_s": round(pixel.wall, 3),
        "delivery_wall_s": round(consumer.wall, 3),
        "bench_process_cpu_s": round(pixel.cpu + consumer.cpu, 3),
        "servers_process_cpu_s": round(server_cpu, 3),
        "hit_ms_shallow_queue": round(run.hit_s_shallow * 1000, 3),
        "hit_ms_deep_queue": round(run.hit_s_deep * 1000, 3),
        "components_s": {name: round(seconds, 3) for name, seconds in components.items()},
        "aws_calls": {
            name: {
                "calls": calls,
                "seconds": round(seconds, 3),
                "ms_each": round(1000 * seconds / calls, 3),
            }
            for phase in (pixel, consumer)
            for name, (seconds, calls) in phase.calls.items()
        },
        "bottleneck": bottleneck,
        "profile_events": profile_events,
        "profile_hot_functions": _hot_functions(profile, 12) if profile_events else [],
    }
