"""Pixel cost: one accepted hit through the real app, against a bare Chalice route.

Every handler is called as Lambda calls it (`handler(proxy_event, context)`), with the same
hits, in alternating blocks so drift on a shared machine hits them alike. Each hit is timed
on its own; figures are ratios of medians.

Two set-ups are measured. In the first (the figure) the app's real boto3 client sends every
message and only the network is replaced (`bench.fakes.aws_in_process`); a third handler,
a bare route that sends a fixed body with the same client, shows what any Lambda that
enqueues pays. In the second the SQS client itself is a fake, leaving the app's own code.
"""

from __future__ import annotations

import gc
import json
import statistics
import time
from collections.abc import Sequence
from typing import Any

from bench.environment import quiet_stdout
from bench.fakes import aws_in_process, sqs_client_faked
from bench.hits import (
    GIF,
    LambdaHandler,
    answered_gif,
    bare_app,
    minimal_enqueue_app,
    proxy_event,
    sample_queries,
)

BLOCK = 100


def _percentile(values: Sequence[int], fraction: float) -> float:
    ordered = sorted(values)
    return float(ordered[min(len(ordered) - 1, int(fraction * len(ordered)))])


def _timed(handler: LambdaHandler, events: Sequence[dict[str, Any]], into: list[int]) -> None:
    clock = time.perf_counter_ns
    for event in events:
        started = clock()
        handler(event, None)
        into.append(clock() - started)


def time_handlers(
    handlers: dict[str, LambdaHandler], hits: int, warmup: int = 200
) -> dict[str, list[int]]:
    """Nanoseconds per hit for each handler: `hits` hits each, interleaved in blocks."""
    events = [proxy_event(query) for query in sample_queries(max(BLOCK, hits))]
    for name, handler in handlers.items():
        answers = [handler(event, None) for event in events[: max(1, min(warmup, len(events)))]]
        refused = [a.get("statusCode") for a in answers if not answered_gif(a)]
        if refused:
            raise RuntimeError(f"{name}: warm-up hits not answered with the GIF: {refused[:5]}")
    times: dict[str, list[int]] = {name: [] for name in handlers}
    gc.collect()
    for start in range(0, hits, BLOCK):
        block = events[start % len(events) : start % len(events) + BLOCK]
        for name, handler in handlers.items():
            _timed(handler, block, times[name])
    return {name: values[:hits] for name, values in times.items()}


def _summary(times: dict[str, list[int]]) -> dict[str, float]:
    summary: dict[str, float] = {}
    for name, values in times.items():
        summary[f"{name}_median_us"] = round(statistics.median(values) / 1000, 2)
        summary[f"{name}_p90_us"] = round(_percentile(values, 0.9) / 1000, 2)
    summary["hits_timed_each"] = len(times["app"])
    return summary


def measure(hits: int) -> dict[str, Any]:
    """The figure (SDK in the path, SQS answered in-process) and two informative ratios."""
    from app import app
    from chalicelib.responses import TRANSPARENT_GIF

    if TRANSPARENT_GIF != GIF:
        raise RuntimeError("the app's GIF changed: update bench.hits.GIF so both answer it")
    with quiet_stdout():
        with aws_in_process(keep_bodies=True) as aws:
            app(proxy_event(sample_queries(1)[0]), None)
            body = aws.sqs.bodies[0] if aws.sqs.bodies else json.dumps({"event": "x"})
            aws.sqs.keep_bodies = False
            with_sdk = time_handlers(
                {"app": app, "bare": bare_app(), "minimal_enqueue": minimal_enqueue_app(body)},
                hits,
            )
            sends = aws.sqs.calls["SendMessage"]
        with sqs_client_faked() as fake:
            app_only = time_handlers({"app": app, "bare": bare_app()}, hits)
    if sends < 2 * hits or fake.sent < hits:
        raise RuntimeError(f"hits did not reach SQS: {sends} and {fake.sent} sends for {hits}")

    def ratio(times: dict[str, list[int]], over: str) -> float:
        return round(statistics.median(times["app"]) / statistics.median(times[over]), 3)

    return {
        "ratio": ratio(with_sdk, "bare"),
        "ratio_vs_minimal_enqueue": ratio(with_sdk, "minimal_enqueue"),
        "app_only_ratio": ratio(app_only, "bare"),
        "with_sdk": _summary(with_sdk),
        "app_only": _summary(app_only),
        "message_bytes": len(body.encode()),
    }
