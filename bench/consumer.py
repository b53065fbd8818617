"""The consumer side, for every destination in the registry: requests per 1,000 events, and
the CPU cost of a batch against botocore's serialization of the same requests.

Messages are made by the pixel itself (hits through the app, SQS answered in-process), so
they are exactly what the consumer reads in production. Each destination is served by the
double `make dev` uses for it (`bench.doubles`, the double its plug-in names), so a
destination added to chalicelib/destinations/ is measured with no change here.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Final, TypeVar, cast

import boto3
from botocore.serialize import create_serializer

from bench import companion
from bench.environment import environment_patch, quiet_stdout
from bench.fakes import aws_in_process, fresh_default_session
from bench.hits import answered_gif, proxy_event, sample_queries

QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:pixel-relay-dev-events"


def pixel_messages(count: int, seed: int = 11) -> list[str]:
    """`count` SQS message bodies, as the app's pixel writes them."""
    from app import app

    with quiet_stdout(), aws_in_process() as aws:
        for query in sample_queries(count, seed=seed):
            answer = app(proxy_event(query), None)
            if not answered_gif(answer):
                raise RuntimeError(f"a hit was refused: {answer.get('statusCode')} {query}")
    return list(aws.sqs.bodies)


def sqs_event(bodies: Sequence[str]) -> dict[str, Any]:
    """The event Lambda's SQS event source hands the consumer (distinct message ids)."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


# Messages a consumer invocation receives when measuring calls: enough for one call of the
# largest request a destination takes (500 records). A stage's BATCH_SIZE (100 by default)
# caps every destination at one call a batch at best. Each destination's target, calls per
# 1,000 events, is its plug-in's `calls_per_1000_events`.
BATCH_SIZE: Final = 500
COST_MESSAGES: Final = 100  # the batch the CPU is measured on


@dataclass
class Double:
    """A destination's dry-run double running in `bench.doubles`."""

    process: subprocess.Popen[str]
    environment: dict[str, str]

    def received(self) -> dict[str, int]:
        numbers: dict[str, int] = companion.count(self.process)
        return numbers

    def wait_for(self, events: int, seconds: float = 60) -> dict[str, int]:
        """What the double holds once `events` arrived (read-backs poll), or at the deadline."""
        deadline = time.monotonic() + seconds
        while True:
            numbers = self.received()
            if numbers["received"] >= events or time.monotonic() > deadline:
                return numbers
            time.sleep(0.2)


def _double_of(destination: str) -> str:
    from chalicelib.destinations import registry

    return registry.plugin(destination).double


@contextlib.contextmanager
def served(destination: str) -> Iterator[Double]:
    """`destination`'s double in its own process, and the app's variables pointing at it."""
    with (
        tempfile.TemporaryFile("w+") as log,
        companion.companion(["bench.doubles", _double_of(destination)], log) as (process, line),
    ):
        if not line:
            process.wait(timeout=30)
            log.seek(0)
            raise RuntimeError(f"the {destination} double did not start: {log.read()[-1500:]}")
        double = Double(process, json.loads(line)["environment"])
        with environment_patch({**double.environment, "DESTINATIONS": destination}):
            yield double


class _CallCounter:
    """Requests sent to AWS services other than SQS, by operation, at botocore's
    `before-send` (so every attempt counts, retries included)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    def __call__(self, event_name: str, **_: Any) -> None:
        service, operation = event_name.split(".")[1:3]
        if service != "sqs":
            self.calls[f"{service}.{operation}"] += 1


def downstream_calls(
    bodies: Sequence[str], destination: str, batch_size: int = BATCH_SIZE
) -> dict[str, Any]:
    """Requests to `destination` per 1,000 events through the real handler (`app.deliver`),
    with SQS answered in-process and the destination served by its dry-run double. Every
    event must arrive there, and no message may be left failed."""
    from app import deliver

    counter = _CallCounter()
    with served(destination) as double:
        with quiet_stdout(), aws_in_process(keep_bodies=False, pinpoint=False) as aws:
            boto3.DEFAULT_SESSION.events.register("before-send", cast(Any, counter))  # type: ignore[union-attr]
            answers = [
                deliver(sqs_event(bodies[start : start + batch_size]), None)
                for start in range(0, len(bodies), batch_size)
            ]
        arrived = double.wait_for(len(bodies))
    failures = sum(len(answer.get("batchItemFailures", [])) for answer in answers)
    requeued = aws.sqs.calls.get("SendMessageBatch", 0) + aws.sqs.calls.get("SendMessage", 0)
    if failures or requeued or arrived["distinct"] != len(bodies):
        raise RuntimeError(
            f"{arrived['distinct']} of {len(bodies)} events reached {destination}, "
            f"{failures} reported as failed, {requeued} requeue calls"
        )
    calls = sum(counter.calls.values())
    return {
        "per_1000_events": round(calls * 1000 / len(bodies), 2),
        "calls": calls,
        "calls_by_operation": dict(counter.calls),
        "events": len(bodies),
        "received_by_double": arrived["received"],
        "batches": len(answers),
        "batch_size": batch_size,
        "consumer_sqs_calls": sum(aws.sqs.calls.values()),
        "original_design_per_1000_events": 1000,
    }


_Wrapper = TypeVar("_Wrapper")


@contextlib.contextmanager
def _clients_wrapped(wrap: Callable[[Any], _Wrapper]) -> Iterator[list[_Wrapper]]:
    """Every boto3 client made inside, wrapped by `wrap` (the wrappers made are listed): how
    the benchmark watches a destination's calls through its plug-in's own `create`, with no
    client parameter in the interface. A destination that makes no boto3 client (one that is
    not an AWS service) gets no CPU figure."""
    made: list[_Wrapper] = []
    real = boto3.client

    def client(*args: Any, **kwargs: Any) -> Any:
        wrapped = wrap(real(*args, **kwargs))
        made.append(wrapped)
        return wrapped

    boto3.client = client
    try:
        yield made
    finally:
        boto3.client = real


class _Recorder:
    """A destination's real client, keeping each API call's method, arguments and answer."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._client = client
        self.calls: list[tuple[str, dict[str, Any], Any]] = []

    def __getattr__(self, name: str) -> Any:
        found = getattr(self._client, name)
        if name not in self._client.meta.method_to_api_mapping:
            return found

        def record(**kwargs: Any) -> Any:
            answer = found(**kwargs)
            self.calls.append((name, copy.deepcopy(kwargs), answer))
            return answer

        return record


class _Replay:
    """Answers each call with the answer recorded for the same method and arguments, so a
    destination that sends concurrently gets the right answer whatever the order; the CPU
    spent here (finding the answer) is kept apart and left out of the destination's cost."""

    def __init__(self, client: Any, calls: list[tuple[str, dict[str, Any], Any]]) -> None:
        self._client = client
        self._answers: dict[bytes, list[Any]] = defaultdict(list)
        for name, kwargs, answer in calls:
            self._answers[pickle.dumps((name, kwargs))].append(answer)
        self._served: Counter[bytes] = Counter()
        self._lock = threading.Lock()
        self.own_cpu_s = 0.0

    def rewind(self) -> None:
        self._served.clear()
        self.own_cpu_s = 0.0

    def __getattr__(self, name: str) -> Any:
        if name not in self._client.meta.method_to_api_mapping:
            return getattr(self._client, name)

        def replay(**kwargs: Any) -> Any:
            started = time.thread_time()
            key = pickle.dumps((name, kwargs))
            with self._lock:
                answers = self._answers.get(key)
                if not answers:
                    raise RuntimeError(f"no recorded answer for this {name} call")
                answer = answers[self._served[key] % len(answers)]
                self._served[key] += 1
                self.own_cpu_s += time.thread_time() - started
            return answer

        return replay


def _cpu_seconds(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def consumer_cost(bodies: Sequence[str], destination: str, repeats: int) -> dict[str, Any]:
    """CPU time to turn one batch of messages into `destination`'s requests and read the
    answers (`Event.from_message`, then the destination's `deliver` on a client replaying
    answers its double gave), against botocore's own serializer on the same requests."""
    from chalicelib.destinations import registry
    from chalicelib.events import Event
    from chalicelib.outcomes import Verdict

    plugin = registry.plugin(destination)
    with served(destination), quiet_stdout(), fresh_default_session():
        configured = plugin.configure(os.environ)
        with _clients_wrapped(_Recorder) as recorders:
            sender = configured.create()
        if len(recorders) != 1:
            raise RuntimeError(f"{destination} made {len(recorders)} boto3 clients, not one")
        [recorder] = recorders
        outcomes = sender.deliver([Event.from_message(body) for body in bodies])
    if {outcome.verdict for outcome in outcomes} != {Verdict.DELIVERED}:
        reasons = Counter(outcome.reason for outcome in outcomes if outcome.reason)
        raise RuntimeError(f"{destination}'s double refused events: {dict(reasons)}")
    client = recorder.client
    with _clients_wrapped(lambda real: _Replay(real, recorder.calls)) as replays:
        replayed = configured.create()
    [replay] = replays

    def ours() -> None:
        replay.rewind()
        answers = replayed.deliver([Event.from_message(body) for body in bodies])
        if [a.verdict for a in answers] != [o.verdict for o in outcomes]:
            raise RuntimeError(f"{destination} answered differently on a replayed pass")

    model = client.meta.service_model
    serializer = create_serializer(model.protocol, include_validation=False)
    requests = [
        (model.operation_model(client.meta.method_to_api_mapping[name]), kwargs)
        for name, kwargs, _ in recorder.calls
    ]

    def botocores() -> None:
        for operation, params in requests:
            serializer.serialize_to_request(params, operation)

    with quiet_stdout():
        ours()
        botocores()
        ours_s: list[float] = []
        theirs_s: list[float] = []
        for _ in range(repeats):
            ours_s.append(_cpu_seconds(ours) - replay.own_cpu_s)
            theirs_s.append(_cpu_seconds(botocores))
    ours_ms = statistics.median(ours_s) * 1000
    theirs_ms = statistics.median(theirs_s) * 1000
    return {
        "ratio": round(ours_ms / theirs_ms, 3),
        "ours_cpu_ms": round(ours_ms, 3),
        "ours_cpu_us_per_event": round(ours_ms * 1000 / len(bodies), 2),
        "botocore_serialize_cpu_ms": round(theirs_ms, 3),
        "botocore_serialize_cpu_us_per_event": round(theirs_ms * 1000 / len(bodies), 2),
        "messages": len(bodies),
        "requests": len(requests),
        "operations": sorted({name for name, _, _ in recorder.calls}),
        "protocol": model.protocol,
        "repeats": repeats,
    }
