"""The benchmark keeps working: a tiny run (`python -m bench --quick`) writes every figure.

Benchmarks are not tests: nothing here looks at a time, a ratio or a target, only that each
figure was measured and written. The one exception is a count that does not depend on the
machine: how many requests a transport makes for the same events (bench/transport.py).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from chalicelib.destinations import registry
from devtools.paths import ROOT

# The table, by key; removing one from the benchmark must fail here. Pinpoint's
# calls and cost keep their first keys; every other destination has its own two.
FIGURES = (
    "pixel_cost",
    "cold_start",
    "memory_ratio_vs_enqueue",
    "memory_ratio",
    "memory_peak_mb",
    "downstream_calls",
    "consumer_cost",
    "dedupe_bytes_per_entry",
    "throughput",
    *(
        f"transport_{count}_{transport}"
        for count in ("api_gateway", "lambda", "sqs")
        for transport in ("get", "beacon10", "beacon50", "template")
    ),
    *(
        f"{figure}_{name.replace('-', '_')}"
        for name in registry.known()
        if name != "pinpoint"
        for figure in ("downstream_calls", "consumer_cost")
    ),
)


def run_bench(*arguments: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bench", *arguments],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    path = tmp_path_factory.mktemp("bench") / "quick.json"
    completed = run_bench("--quick", "--json", str(path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    return path, completed.stdout


def test_quick_run_writes_every_figure(quick_run: tuple[Path, str]) -> None:
    path, _ = quick_run
    document: dict[str, Any] = json.loads(path.read_text())
    assert document["schema"] == "pixel-relay-bench/1"
    assert document["run"]["quick"] is True
    figures = document["figures"]
    for key in FIGURES:
        figure = figures[key]
        assert figure["error"] == "", (key, figure["error"])
        assert isinstance(figure["value"], float), key
        assert math.isfinite(figure["value"]), key
        assert figure["value"] > 0, key
        assert figure["passed"] in (True, False, None), key
        assert figure["details"], key
    assert figures["throughput"]["details"]["bottleneck"]
    for name in registry.known():  # each destination's double received every event
        calls = figures[
            "downstream_calls" + ("" if name == "pinpoint" else "_" + name.replace("-", "_"))
        ]
        assert calls["details"]["events"] == document["run"]["parameters"]["events"], name
        assert calls["details"]["calls_by_operation"], name
    assert figures["cold_start"]["details"]["import_profile"]["by_package"]


def test_quick_run_describes_the_machine_and_prints_the_table(quick_run: tuple[Path, str]) -> None:
    path, stdout = quick_run
    machine = json.loads(path.read_text())["machine"]
    assert machine["nproc"] >= 1
    assert machine["cpu_model"]
    assert machine["python"].startswith("3.")
    assert "| figure" in stdout
    for word in ("pixel cost", "cold start", "memory", "downstream calls", "consumer cost"):
        assert word in stdout
    for word in ("API Gateway requests", "Lambda invocations", "SQS requests", "beacons of 50"):
        assert word in stdout
    assert "transport, beacons of 10: $" in stdout  # the cost per million events
    for name in registry.known():
        assert f"downstream calls, {name} (" in stdout
        assert f"consumer cost, {name} (" in stdout


def test_beacons_cost_a_tenth_of_get_hits_or_less_in_each_count(
    quick_run: tuple[Path, str],
) -> None:
    """Counts, not timings: the same 200 events as GETs, then as beacons of 10 and of 50."""
    path, _ = quick_run
    figures = json.loads(path.read_text())["figures"]
    expected = {
        # GET: one request, one invocation, one SendMessage per event.
        "get": {"api_gateway": 1000, "lambda": 1000, "sqs": 1000},
        # A beacon: one request, one invocation, a SendMessageBatch per ten lines.
        "beacon10": {"api_gateway": 100, "lambda": 100, "sqs": 100},
        "beacon50": {"api_gateway": 20, "lambda": 20, "sqs": 100},
    }
    for transport, counts in expected.items():
        for count, per_1000 in counts.items():
            figure = figures[f"transport_{count}_{transport}"]
            assert figure["value"] == per_1000, (transport, count, figure["value"])
            if transport == "get":
                assert figure["target"] is None  # reported
            else:
                assert figure["target"] == counts_of_get(figures, count) / 10
                assert figure["passed"] is True
    operations = figures["transport_sqs_beacon10"]["details"]["sqs_operations"]
    assert operations == {"SendMessageBatch": 20}
    # The queue URL is looked up once per container, outside the counts.
    assert figures["transport_sqs_get"]["details"]["cold_container_sqs_operations"] == {
        "GetQueueUrl": 1
    }


def test_the_web_tags_default_transport_needs_at_most_100_requests_per_1000_events(
    quick_run: tuple[Path, str],
) -> None:
    """Counts: the tag on the strict emulator with the real pixel-relay.js, pages of 50 events
    then left: 20 + 20 + 10 lines a page, so 3 requests and 5 SendMessageBatch calls."""
    path, _ = quick_run
    figures = json.loads(path.read_text())["figures"]
    requests = figures["transport_api_gateway_template"]
    assert requests["value"] == 60
    assert requests["target"] == 100
    assert requests["passed"] is True
    assert requests["details"]["hits_per_request"] == 50 / 3
    assert figures["transport_sqs_template"]["value"] == 100


def counts_of_get(figures: dict[str, Any], count: str) -> float:
    value = figures[f"transport_{count}_get"]["value"]
    assert isinstance(value, float)
    return value


def test_compare_prints_a_change_for_each_figure_measured(quick_run: tuple[Path, str]) -> None:
    path, _ = quick_run
    completed = run_bench("--quick", "--only", "consumer", "--compare", str(path))
    assert completed.returncode == 0, completed.stdout + completed.stderr
    comparison = completed.stdout.split("compared with", 1)[1]
    for label in ("downstream calls, customer-profiles", "consumer cost, pinpoint"):
        line = next(line for line in comparison.splitlines() if line.startswith(label))
        assert line.split()[-1] in ("better", "worse", "same"), line
