"""`python -m bench`: measure every figure in one run, print the table, write the JSON."""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import report, transport
from bench.environment import machine, prepare_process
from bench.report import RATIO, Figure

FULL = {
    "hits": 5000,
    "processes": 21,
    "memory_hits": 1000,
    "memory_processes": 3,
    "events": 1000,
    "repeats": 200,
    "throughput_events": 10_000,
    "burst": 500,
    "profile_events": 1000,
}
QUICK = {
    "hits": 300,
    "processes": 2,
    "memory_hits": 50,
    "memory_processes": 1,
    "events": 200,
    "repeats": 5,
    "throughput_events": 100,
    "burst": 100,
    "profile_events": 20,
}
STAGES = (
    "cold_start",
    "memory",
    "pixel",
    "consumer",
    "dedupe_memory",
    "transport",
    "throughput",
)


def figures(throughput_events: int) -> list[Figure]:
    """Every figure of the issue's table, in its order (plus one informative variant)."""
    return [
        Figure("pixel_cost", "pixel cost (hit ÷ bare Chalice route)", RATIO, 1.5),
        Figure(
            "pixel_cost_vs_enqueue",
            "pixel cost ÷ bare route that sends with boto3 (info)",
            RATIO,
        ),
        Figure("pixel_cost_app_only", "pixel cost, SQS client faked (app code only)", RATIO),
        Figure(
            "cold_start",
            "pixel cold start (import app ÷ chalice + boto3), bundle's .pyc",
            RATIO,
            1.15,
        ),
        Figure(
            "cold_start_from_source",
            "pixel cold start, chalicelib compiled at import (info)",
            RATIO,
        ),
        Figure(
            "memory_ratio_vs_enqueue",
            "pixel memory (peak RSS ÷ bare route sending with boto3)",
            RATIO,
            1.25,
        ),
        Figure("memory_ratio", "pixel memory (peak RSS ÷ bare route, no send) (info)", RATIO),
        Figure("memory_peak_mb", "pixel memory, absolute peak RSS", "MB", 100, inclusive=False),
        *destination_figures(),
        Figure(
            "dedupe_bytes_per_entry",
            "consumer's dedupe memory, peak RSS a configured entry fed new ids",
            "bytes",
            _dedupe_bound(),
        ),
        Figure(
            "throughput",
            f"throughput (local stack, {throughput_events:,} events)",
            "events/s",
            lower_is_better=False,
        ),
        *transport.figures(),
    ]


def _dedupe_bound() -> float:
    """The bytes an entry DEDUPE_MEMORY_SIZE is bounded with: the figure must stay under it."""
    from chalicelib.dedupe import MEMORY_BYTES_PER_ENTRY

    return float(MEMORY_BYTES_PER_ENTRY)


def calls_key(destination: str) -> str:
    """Pinpoint's figures keep their first names, so `--compare` reads earlier files."""
    return "downstream_calls" + _suffix(destination)


def cost_key(destination: str) -> str:
    return "consumer_cost" + _suffix(destination)


def _suffix(destination: str) -> str:
    return "" if destination == "pinpoint" else "_" + destination.replace("-", "_")


def destination_figures() -> list[Figure]:
    """Calls per 1,000 events and the consumer's CPU, for every destination in the registry."""
    from bench.consumer import BATCH_SIZE
    from chalicelib.destinations import registry

    found: list[Figure] = []
    for name in registry.known():
        found.append(
            Figure(
                calls_key(name),
                f"downstream calls, {name} (per 1,000 events, batches of {BATCH_SIZE})",
                "calls",
                # The plug-in's own target (None: reported without one).
                registry.plugin(name).calls_per_1000_events,
            )
        )
    for name in registry.known():
        found.append(
            Figure(
                cost_key(name), f"consumer cost, {name} (CPU ÷ botocore serialization)", RATIO, 2.0
            )
        )
    return found


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description="Measure pixel-relay against same-run baselines; print a table, write JSON.",
    )
    parser.add_argument("--quick", action="store_true", help="tiny sizes: a smoke run for CI")
    parser.add_argument("--json", type=Path, metavar="PATH", help="write the results here")
    parser.add_argument("--compare", type=Path, metavar="PATH", help="an earlier --json file")
    parser.add_argument(
        "--only", action="append", choices=STAGES, help="run only these stages (repeatable)"
    )
    parser.add_argument(
        "--strict", action="store_true", help="exit 1 when a figure misses its target"
    )
    sizes = parser.add_argument_group("sizes (defaults: full run; --quick: tiny)")
    for name, default in FULL.items():
        sizes.add_argument(
            f"--{name.replace('_', '-')}",
            type=int,
            help=f"default {default:,} ({QUICK[name]:,} with --quick)",
        )
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    for name in FULL:
        if getattr(args, name) is None:
            setattr(args, name, preset[name])
    return args


def _say(line: str) -> None:
    print(line, file=sys.stderr, flush=True)


def _stage(name: str, targets: list[Figure], work: Callable[[], None]) -> None:
    _say(f"bench: {name} ...")
    started = time.perf_counter()
    try:
        work()
    except Exception as error:
        message = f"{type(error).__name__}: {error}"
        _say(f"bench: {name} failed: {message}\n{traceback.format_exc()}")
        for figure in targets:
            figure.error = message
    _say(f"bench: {name} done in {time.perf_counter() - started:.1f} s")


def run(args: argparse.Namespace) -> list[Figure]:
    from bench import consumer, pixel, processes, throughput

    measured = figures(args.throughput_events)
    by_key = {figure.key: figure for figure in measured}
    wanted = set(args.only or STAGES)

    def set_figure(key: str, value: float, details: dict[str, Any]) -> None:
        by_key[key].value = float(value)
        by_key[key].details = details

    def cold_start() -> None:
        result = processes.cold_start(args.processes)
        set_figure("cold_start", result["ratio"], result)
        set_figure("cold_start_from_source", result["from_source_ratio"], result)

    def memory() -> None:
        result = processes.peak_memory(args.memory_hits, args.memory_processes)
        set_figure("memory_ratio_vs_enqueue", result["ratio_vs_enqueue"], result)
        set_figure("memory_ratio", result["ratio"], result)
        set_figure("memory_peak_mb", result["app_peak_mb"], result)

    def pixel_cost() -> None:
        result = pixel.measure(args.hits)
        set_figure("pixel_cost", result["ratio"], result)
        set_figure("pixel_cost_vs_enqueue", result["ratio_vs_minimal_enqueue"], result)
        set_figure("pixel_cost_app_only", result["app_only_ratio"], result)

    def consumer_side() -> None:
        from chalicelib.destinations import registry

        bodies = consumer.pixel_messages(args.events)
        for name in registry.known():
            # One destination's failure marks its own figures only.
            _stage(
                f"consumer: {name}",
                [by_key[calls_key(name)], by_key[cost_key(name)]],
                lambda name=name: destination(name, bodies),  # type: ignore[misc]
            )

    def destination(name: str, bodies: list[str]) -> None:
        calls = consumer.downstream_calls(bodies, name)
        set_figure(calls_key(name), calls["per_1000_events"], calls)
        cost = consumer.consumer_cost(bodies[: consumer.COST_MESSAGES], name, args.repeats)
        set_figure(cost_key(name), cost["ratio"], cost)

    def dedupe_memory() -> None:
        from bench import dedupe_memory as measured_memory

        capacities = measured_memory.QUICK_CAPACITIES if args.quick else None
        result = measured_memory.measure(capacities) if capacities else measured_memory.measure()
        set_figure("dedupe_bytes_per_entry", result["bytes_per_entry"], result)

    def transport_counts() -> None:
        transport.apply(transport.measure(args.events), set_figure, by_key)

    def local_stack() -> None:
        with tempfile.TemporaryFile("w+") as log:
            try:
                result = throughput.measure(
                    args.throughput_events, 100, args.burst, args.profile_events, log
                )
            except Exception as error:
                log.seek(0)
                raise RuntimeError(f"{error} (servers' log: {log.read()[-1500:]!r})") from error
        set_figure("throughput", result["events_per_second"], result)

    stages: dict[str, tuple[list[str], Callable[[], None]]] = {
        "cold_start": (["cold_start", "cold_start_from_source"], cold_start),
        "memory": (["memory_ratio_vs_enqueue", "memory_ratio", "memory_peak_mb"], memory),
        "pixel": (["pixel_cost", "pixel_cost_vs_enqueue", "pixel_cost_app_only"], pixel_cost),
        "consumer": (
            [f.key for f in measured if f.key.startswith(("downstream_calls", "consumer_cost"))],
            consumer_side,
        ),
        "dedupe_memory": (["dedupe_bytes_per_entry"], dedupe_memory),
        "transport": ([f.key for f in transport.figures()], transport_counts),
        "throughput": (["throughput"], local_stack),
    }
    for name in STAGES:
        keys, work = stages[name]
        if name in wanted:
            _stage(name, [by_key[key] for key in keys], work)
    return [figure for figure in measured if figure.key in _keys(stages, wanted)]


def _keys(stages: dict[str, tuple[list[str], Callable[[], None]]], wanted: set[str]) -> set[str]:
    return {key for name, (keys, _) in stages.items() if name in wanted for key in keys}


def notes(measured: list[Figure]) -> list[str]:
    """The few details a reader needs beside the table."""
    by_key = {figure.key: figure for figure in measured}
    lines: list[str] = []
    pixel = by_key.get("pixel_cost")
    if pixel and not pixel.error:
        sdk, only = pixel.details["with_sdk"], pixel.details["app_only"]
        lines.append(
            f"pixel: median {sdk['app_median_us']} µs a hit with botocore's SendMessage "
            f"(SQS answered in-process); bare route {sdk['bare_median_us']} µs; bare route "
            f"+ boto3 send {sdk['minimal_enqueue_median_us']} µs; app with the SQS client "
            f"faked {only['app_median_us']} µs (bare {only['bare_median_us']} µs)"
        )
    cold = by_key.get("cold_start")
    if cold and not cold.error:
        packages = ", ".join(
            f"{p['package']} {p['self_ms']} ms"
            for p in cold.details["import_profile"]["by_package"][:5]
        )
        lines.append(
            f"cold start: import app {cold.details['app_median_ms']} ms with the bundle's .pyc "
            f"({cold.details['from_source_median_ms']} ms compiling chalicelib), chalice + "
            f"boto3 {cold.details['baseline_median_ms']} ms; extra imports (-X importtime): "
            f"{packages}"
        )
    memory = by_key.get("memory_ratio")
    if memory and not memory.error:
        lines.append(
            f"memory: app {memory.details['app_peak_mb']} MB, bare route sending with boto3 "
            f"{memory.details['enqueue_peak_mb']} MB, bare route + boto3 (no send) "
            f"{memory.details['bare_peak_mb']} MB, bare route alone "
            f"{memory.details['bare_chalice_only_peak_mb']} MB"
        )
    for name in _destinations():
        cost = by_key.get(cost_key(name))
        calls = by_key.get(calls_key(name))
        if cost and not cost.error:
            details = cost.details
            lines.append(
                f"consumer, {name}: {details['ours_cpu_us_per_event']} µs CPU an event "
                f"({details['ours_cpu_ms']} ms a batch of {details['messages']}); botocore "
                f"serializes its {details['requests']} request(s) in "
                f"{details['botocore_serialize_cpu_us_per_event']} µs an event"
            )
        if calls and not calls.error:
            lines.append(f"calls, {name}: {calls.details['calls_by_operation']}")
    dedupe = by_key.get("dedupe_bytes_per_entry")
    if dedupe and not dedupe.error:
        runs = ", ".join(
            f"{run['capacity']:,}: {run['peak_bytes_per_entry']}" for run in dedupe.details["runs"]
        )
        lines.append(
            f"dedupe memory: bytes a configured entry at peak ({runs}); the consumer itself"
            f" {dedupe.details['consumer_peak_mb']} MB"
        )
    lines += transport.notes(by_key)
    flow = by_key.get("throughput")
    if flow and not flow.error:
        lines.append(
            f"throughput: pixel → SQS {flow.details['pixel_hits_per_second']} hits/s, "
            f"SQS → Pinpoint {flow.details['delivery_events_per_second']} events/s"
        )
        lines.append(f"bottleneck: {flow.details['bottleneck']}")
        for row in flow.details["profile_hot_functions"][:5]:
            lines.append(
                f"  profile: {row['own_s']:>7.3f} s own  {row['calls']:>8} calls  {row['function']}"
            )
    return lines


def _destinations() -> tuple[str, ...]:
    from chalicelib.destinations import registry

    return registry.known()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    prepare_process()
    earlier = report.load(args.compare) if args.compare else None
    started = datetime.now(UTC)
    clock = time.perf_counter()
    measured = run(args)
    parameters = {name: getattr(args, name) for name in FULL}
    run_info = {
        "started": started.isoformat(timespec="seconds"),
        "seconds": round(time.perf_counter() - clock, 1),
        "quick": args.quick,
        "parameters": parameters,
    }
    description = machine()
    print(
        f"pixel-relay benchmark, {run_info['started']}: {description['cpu_model']},"
        f" {description['nproc']} CPUs, Python {description['python']}"
    )
    print()
    print(report.table(measured))
    print()
    for line in notes(measured):
        print(line)
    if earlier is not None:
        print()
        print(report.comparison(earlier, measured))
    if args.json:
        report.write(args.json, report.document(measured, description, run_info))
        print(f"\nwritten to {args.json}")
    if any(figure.error for figure in measured):
        return 2
    if args.strict and any(figure.passed is False for figure in measured):
        return 1
    return 0
