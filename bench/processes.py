"""Figures that need fresh interpreters: cold start (import time) and peak memory.

Each process gets the offline stage environment and the project root as its working
directory, exactly as `python -c "import app"` would run in Lambda's init phase. Python's
own start-up is outside the timed region: only the import is measured.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from typing import Any, Final

from devtools.paths import ROOT

IMPORTS: Final = {
    "app": "import app",
    "baseline": "import chalice, boto3",
}
_TIMED = (
    "import time\n"
    "wall, cpu = time.perf_counter(), time.process_time()\n"
    "{statement}\n"
    "print(repr(time.process_time() - cpu), repr(time.perf_counter() - wall))\n"
)


def _run(arguments: list[str], environment: dict[str, str]) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(
            f"{' '.join(arguments)[:80]} exited {completed.returncode}: {completed.stderr[-2000:]}"
        )
    return completed


def import_seconds(kind: str, environment: dict[str, str]) -> tuple[float, float]:
    """(CPU seconds, wall seconds) the import took in a fresh interpreter."""
    statement = IMPORTS[kind]
    output = _run(["-c", _TIMED.format(statement=statement)], environment).stdout
    cpu, wall = output.strip().splitlines()[-1].split()
    return float(cpu), float(wall)


def cold_start(processes: int) -> dict[str, Any]:
    """Median import time of app.py and of chalice + boto3, `processes` fresh runs each.

    The figure uses the CPU time of the import: an import is CPU work (the files are in the
    page cache after the first run), and on a shared machine wall time mostly measures the
    neighbours. Wall medians are kept beside it.
    """
    environment = dict(os.environ)
    for kind in IMPORTS:  # one unmeasured run each: byte-code caches written, files cached
        import_seconds(kind, environment)
    cpu: dict[str, list[float]] = {kind: [] for kind in IMPORTS}
    wall: dict[str, list[float]] = {kind: [] for kind in IMPORTS}
    for _ in range(processes):
        for kind in IMPORTS:  # alternating, so drift affects both alike
            cpu_s, wall_s = import_seconds(kind, environment)
            cpu[kind].append(cpu_s)
            wall[kind].append(wall_s)
    app_ms = statistics.median(cpu["app"]) * 1000
    baseline_ms = statistics.median(cpu["baseline"]) * 1000
    app_wall_ms = statistics.median(wall["app"]) * 1000
    baseline_wall_ms = statistics.median(wall["baseline"]) * 1000
    return {
        "app_median_ms": round(app_ms, 2),
        "baseline_median_ms": round(baseline_ms, 2),
        "ratio": round(app_ms / baseline_ms, 3),
        "clock": "CPU time of the import in the fresh process",
        "app_wall_median_ms": round(app_wall_ms, 2),
        "baseline_wall_median_ms": round(baseline_wall_ms, 2),
        "wall_ratio": round(app_wall_ms / baseline_wall_ms, 3),
        "processes_each": processes,
        "app_cpu_ms": [round(t * 1000, 2) for t in cpu["app"]],
        "baseline_cpu_ms": [round(t * 1000, 2) for t in cpu["baseline"]],
        "import_profile": import_profile(environment),
    }


@dataclass(frozen=True)
class _ImportLine:
    self_us: int
    cumulative_us: int
    module: str


def _importtime(statement: str, environment: dict[str, str]) -> list[_ImportLine]:
    stderr = _run(["-X", "importtime", "-c", statement], environment).stderr
    lines = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, module = line.removeprefix("import time:").split("|", 2)
        lines.append(_ImportLine(int(self_us), int(cumulative_us), module.strip()))
    return lines


def import_profile(environment: dict[str, str], top: int = 8) -> dict[str, Any]:
    """`python -X importtime`: what app.py imports beyond chalice + boto3, by package.

    Self times are summed per top-level package for the modules the baseline does not load,
    so the list says which packages the app's extra cold-start time goes to.
    """
    app_lines = _importtime(IMPORTS["app"], environment)
    baseline_modules = {line.module for line in _importtime(IMPORTS["baseline"], environment)}
    extra: dict[str, int] = defaultdict(int)
    modules: dict[str, int] = defaultdict(int)
    for line in app_lines:
        if line.module not in baseline_modules:
            package = line.module.split(".")[0]
            extra[package] += line.self_us
            modules[package] += 1
    ranked = sorted(extra.items(), key=lambda item: -item[1])[:top]
    return {
        "extra_modules": sum(modules.values()),
        "extra_self_ms_under_importtime": round(sum(extra.values()) / 1000, 2),
        "by_package": [
            {"package": name, "self_ms": round(us / 1000, 2), "modules": modules[name]}
            for name, us in ranked
        ],
        "note": "python -X importtime self times of modules the baseline does not import; "
        "importtime itself slows imports, so compare these with each other only",
    }


def peak_memory(hits: int, processes: int) -> dict[str, Any]:
    """Peak RSS of a fresh process that imports the app and serves `hits` hits, against a
    process that imports chalice + boto3 and serves the bare route (median of `processes`)."""
    environment = dict(os.environ)
    peaks: dict[str, list[int]] = {"app": [], "bare": [], "bare-chalice-only": []}
    for _ in range(processes):
        for kind in peaks:
            output = _run(["-m", "bench.child", kind, str(hits)], environment).stdout
            result = json.loads(output.strip().splitlines()[-1])
            if result["answered_gif"] != hits:
                raise RuntimeError(f"{kind}: {result['answered_gif']} of {hits} hits got the GIF")
            peaks[kind].append(int(result["peak_rss_kib"]))
    app_mb = statistics.median(peaks["app"]) / 1024
    bare_mb = statistics.median(peaks["bare"]) / 1024
    return {
        "app_peak_mb": round(app_mb, 2),
        "bare_peak_mb": round(bare_mb, 2),
        "ratio": round(app_mb / bare_mb, 3),
        "bare_chalice_only_peak_mb": round(statistics.median(peaks["bare-chalice-only"]) / 1024, 2),
        "hits": hits,
        "processes_each": processes,
        "baseline": "a fresh process that imports chalice and boto3 and serves the bare route",
    }
