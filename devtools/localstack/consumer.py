"""The local consumer: `deliver` fed from the events queue as Lambda would feed it.

The local stack runs this in its own process so that it can restart it, together with
`chalice local`, whenever the code changes: pixel and consumer always run the same code.
It expects the stage's environment and AWS_ENDPOINT_URL_SQS from its parent.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any

import boto3

from chalicelib.config import Settings
from devtools.localstack.event_source import LocalEventSourceMapping, PollResult
from devtools.paths import ROOT
from devtools.process import stop_on_signals


def describe_poll(result: PollResult) -> str:
    line = f"consumer: batch of {result.received}: {result.deleted} done, {result.left} to retry"
    if result.error is not None:
        line += f" ({result.error})"
    return line


def load_deliver() -> Callable[[dict[str, Any], Any], Any]:
    """app.deliver, imported only now: app.py reads the queue wiring from os.environ."""
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    deliver: Callable[[dict[str, Any], Any], Any] = importlib.import_module("app").deliver
    return deliver


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=".venv/bin/python -m devtools.localstack.consumer")
    parser.add_argument("--redeliver-at-once", action="store_true")
    args = parser.parse_args(argv)

    settings = Settings.from_env(os.environ)
    sqs = boto3.client("sqs")
    queue_url = sqs.get_queue_url(QueueName=settings.wiring.events_queue)["QueueUrl"]
    deliver = load_deliver()
    mapping = LocalEventSourceMapping(
        sqs,
        queue_url,
        # Chalice's handler object takes (event, context) like Lambda; only the event is read.
        handler=lambda event: deliver(event, None),
        batch_size=settings.wiring.batch_size,
        batching_window_seconds=settings.wiring.batching_window_seconds,
        report_batch_item_failures=settings.report_batch_item_failures,
        redeliver_at_once=args.redeliver_at_once,
    )

    with stop_on_signals() as stop:
        print(f"consumer: polling {settings.wiring.events_queue}", flush=True)
        mapping.run(stop, on_poll=lambda result: print(describe_poll(result), flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
