"""Figures that need fresh interpreters: cold start (import time) and peak memory.

Each process gets the offline stage environment, exactly as `python -c "import app"` would
run in Lambda's init phase. Python's own start-up is outside the timed region: only the
import is measured. The cold start imports the app from a copy laid out as the Lambda bundle
is (app.py and chalicelib/, with the bytecode the package step compiles into it), never from
the working tree, whose `__pycache__` depends on what ran there before.
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final

from devtools.deploy.bytecode import ZIP_MODE, compile_tree
from devtools.paths import ROOT

IMPORTS: Final = {
    "app": "import app",
    "baseline": "import chalice, boto3",
}
# What the bundle holds of this project: the package step adds the dependencies beside them.
BUNDLE_SOURCES: Final = ("app.py", "chalicelib")
_TIMED = (
    "import time\n"
    "wall, cpu = time.perf_counter(), time.process_time()\n"
    "{statement}\n"
    "print(repr(time.process_time() - cpu), repr(time.perf_counter() - wall))\n"
)


def _run(
    arguments: list[str], environment: dict[str, str], cwd: Path = ROOT
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        [sys.executable, *arguments],
        cwd=cwd,
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


def import_seconds(kind: str, environment: dict[str, str], cwd: Path = ROOT) -> tuple[float, float]:
    """(CPU seconds, wall seconds) the import took in a fresh interpreter started in `cwd`."""
    statement = IMPORTS[kind]
    output = _run(["-c", _TIMED.format(statement=statement)], environment, cwd).stdout
    cpu, wall = output.strip().splitlines()[-1].split()
    return float(cpu), float(wall)


def lay_out_bundle(target: Path, compiled: bool, root: Path = ROOT) -> Path:
    """app.py and chalicelib/ copied into `target` as the bundle holds them: with the
    package step's bytecode (`compiled`), or sources only (the bundle without that step)."""
    target.mkdir(parents=True, exist_ok=True)
    for name in BUNDLE_SOURCES:
        source = root / name
        if source.is_dir():
            shutil.copytree(source, target / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target / name)
    if compiled:
        compile_tree(target, ZIP_MODE)  # as `make package` compiles the zip
    return target


def cold_start(processes: int) -> dict[str, Any]:
    """Median import time of app.py and of chalice + boto3, `processes` fresh runs each.

    The app is imported as the Lambda bundle runs it: from a copy holding the bytecode the
    package step compiles (`devtools.deploy.bytecode`); the dependencies use the bytecode
    their install wrote, on both sides. The same copy without bytecode (every import
    compiles chalicelib, as bundles did before the package step compiled them) is kept as
    `from_source`, for reference. No process writes bytecode (PYTHONDONTWRITEBYTECODE), so
    each run finds what the first found.

    The figure uses the CPU time of the import: an import is CPU work (the files are in the
    page cache after the first run), and on a shared machine wall time mostly measures the
    neighbours. Wall medians are kept beside it.
    """
    environment = dict(os.environ, PYTHONDONTWRITEBYTECODE="1")
    with tempfile.TemporaryDirectory(prefix="pixel-relay-bundle-") as scratch:
        bundle = lay_out_bundle(Path(scratch) / "compiled", compiled=True)
        source_only = lay_out_bundle(Path(scratch) / "source", compiled=False)
        runs = {
            "app": ("app", bundle),
            "baseline": ("baseline", bundle),
            "from_source": ("app", source_only),
        }
        for kind, where in runs.values():  # one unmeasured run each: files in the page cache
            import_seconds(kind, environment, where)
        cpu: dict[str, list[float]] = {name: [] for name in runs}
        wall: dict[str, list[float]] = {name: [] for name in runs}
        for _ in range(processes):
            for name, (kind, where) in runs.items():  # interleaved: drift affects all alike
                cpu_s, wall_s = import_seconds(kind, environment, where)
                cpu[name].append(cpu_s)
                wall[name].append(wall_s)
        profile = import_profile(environment, bundle)
    ms = {name: statistics.median(times) * 1000 for name, times in cpu.items()}
    wall_ms = {name: statistics.median(times) * 1000 for name, times in wall.items()}
    return {
        "app_median_ms": round(ms["app"], 2),
        "baseline_median_ms": round(ms["baseline"], 2),
        "ratio": round(ms["app"] / ms["baseline"], 3),
        "clock": "CPU time of the import in the fresh process",
        "bytecode": "app.py and chalicelib/ with the package step's unchecked-hash .pyc files",
        "from_source_median_ms": round(ms["from_source"], 2),
        "from_source_ratio": round(ms["from_source"] / ms["baseline"], 3),
        "app_wall_median_ms": round(wall_ms["app"], 2),
        "baseline_wall_median_ms": round(wall_ms["baseline"], 2),
        "wall_ratio": round(wall_ms["app"] / wall_ms["baseline"], 3),
        "processes_each": processes,
        "app_cpu_ms": [round(t * 1000, 2) for t in cpu["app"]],
        "baseline_cpu_ms": [round(t * 1000, 2) for t in cpu["baseline"]],
        "from_source_cpu_ms": [round(t * 1000, 2) for t in cpu["from_source"]],
        "import_profile": profile,
    }


@dataclass(frozen=True)
class _ImportLine:
    self_us: int
    cumulative_us: int
    module: str


def _importtime(statement: str, environment: dict[str, str], cwd: Path) -> list[_ImportLine]:
    stderr = _run(["-X", "importtime", "-c", statement], environment, cwd).stderr
    lines = []
    for line in stderr.splitlines():
        if not line.startswith("import time:") or "self [us]" in line:
            continue
        self_us, cumulative_us, module = line.removeprefix("import time:").split("|", 2)
        lines.append(_ImportLine(int(self_us), int(cumulative_us), module.strip()))
    return lines


def import_profile(environment: dict[str, str], cwd: Path = ROOT, top: int = 8) -> dict[str, Any]:
    """`python -X importtime`: what app.py imports beyond chalice + boto3, by package.

    Self times are summed per top-level package for the modules the baseline does not load,
    so the list says which packages the app's extra cold-start time goes to.
    """
    app_lines = _importtime(IMPORTS["app"], environment, cwd)
    baseline_modules = {line.module for line in _importtime(IMPORTS["baseline"], environment, cwd)}
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
    process that serves a bare route sending each hit with boto3 (the figure: any pixel that
    enqueues holds an SQS client and its model), and one that imports chalice + boto3 and
    serves the bare route without sending (median of `processes`)."""
    environment = dict(os.environ)
    peaks: dict[str, list[int]] = {"app": [], "enqueue": [], "bare": [], "bare-chalice-only": []}
    for _ in range(processes):
        for kind in peaks:
            output = _run(["-m", "bench.child", kind, str(hits)], environment).stdout
            result = json.loads(output.strip().splitlines()[-1])
            if result["answered_gif"] != hits:
                raise RuntimeError(f"{kind}: {result['answered_gif']} of {hits} hits got the GIF")
            peaks[kind].append(int(result["peak_rss_kib"]))
    app_mb = statistics.median(peaks["app"]) / 1024
    bare_mb = statistics.median(peaks["bare"]) / 1024
    enqueue_mb = statistics.median(peaks["enqueue"]) / 1024
    return {
        "app_peak_mb": round(app_mb, 2),
        "enqueue_peak_mb": round(enqueue_mb, 2),
        "ratio_vs_enqueue": round(app_mb / enqueue_mb, 3),
        "bare_peak_mb": round(bare_mb, 2),
        "ratio": round(app_mb / bare_mb, 3),
        "bare_chalice_only_peak_mb": round(statistics.median(peaks["bare-chalice-only"]) / 1024, 2),
        "hits": hits,
        "processes_each": processes,
        "baseline": "a fresh process that serves a bare route sending each hit with boto3",
    }
