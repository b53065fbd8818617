"""The consumer's memory of deliveries (`chalicelib.dedupe.RecentDeliveries`): bytes a
configured entry at its worst, the figure DEDUPE_MEMORY_SIZE is bounded by.

Each capacity is measured in a fresh interpreter: the memory is filled, then fed `turns`
times its capacity of new keys (what an attacker sending new event ids does, and what a
long-lived container does anyway), and the process's peak resident set (Linux's VmHWM,
reset just before) above what it held before the memory existed is divided by the capacity.
Peak RSS is what Lambda holds against `lambda_memory_size`; it includes the allocator's
fragmentation, which tracemalloc does not see. (Not ru_maxrss: a child's counts the peak of
the parent it was forked from.) The figure is the largest over several capacities, since a set's
table grows in powers of two and the bytes an entry costs vary with where a capacity falls.

Beside it, the consumer's own peak RSS once built with every destination (the app imported,
`runtime.batch_delivery()` made, offline): what the other half of lambda_memory_size holds
besides a batch (chalicelib.dedupe.MEMORY_SHARE).

Run alone: `.venv/bin/python -m bench.dedupe_memory` (or `make bench ARGS="--only
dedupe_memory"`).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any, Final

from devtools.paths import ROOT

CAPACITIES: Final = (50_000, 100_000, 150_000, 250_000, 400_000, 700_000, 1_000_000, 2_000_000)
QUICK_CAPACITIES: Final = (100_000,)
TURNS: Final = 6


def _status_bytes(field: str) -> int:
    """A size from /proc/self/status (Linux): VmRSS now, VmHWM the peak."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024  # kB
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Forget the peak so far (start-up's): Linux resets VmHWM on writing 5 to clear_refs."""
    with open("/proc/self/clear_refs", "w", encoding="ascii") as clear_refs:
        clear_refs.write("5")


def child(capacity: int, turns: int) -> dict[str, Any]:
    """In this process: fill a memory of `capacity`, feed it `turns` x capacity new keys."""
    from chalicelib.dedupe import RecentDeliveries, fingerprint

    fingerprint("pinpoint", ("warm", "up"))  # hashlib's own allocations before the baseline
    _reset_peak()
    before = _status_bytes("VmRSS")
    memory = RecentDeliveries(capacity)
    after_fill = 0
    for number in range((turns + 1) * capacity):
        memory.add(fingerprint("pinpoint", (f"ep-{number}", f"e-{number}")))
        if number == capacity - 1:
            after_fill = _status_bytes("VmHWM")
    peak = _status_bytes("VmHWM")
    return {
        "capacity": capacity,
        "turns": turns,
        "keys_held": len(memory),
        "filled_bytes_per_entry": round((after_fill - before) / capacity, 1),
        "peak_bytes_per_entry": round((peak - before) / capacity, 1),
    }


def consumer() -> dict[str, Any]:
    """In this process: the consumer built with every destination, offline."""
    from bench.environment import prepare_process

    prepare_process()
    from chalicelib.destinations import registry

    os.environ["DESTINATIONS"] = ",".join(registry.known())
    import app  # noqa: F401  (what Lambda's init imports)
    from chalicelib import runtime

    runtime.batch_delivery()
    return {"consumer_peak_mb": round(_status_bytes("VmHWM") / 2**20, 1)}


def _child(*arguments: str) -> dict[str, Any]:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.dedupe_memory", *arguments],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=True,
    )
    result: dict[str, Any] = json.loads(completed.stdout.strip().splitlines()[-1])
    return result


def measure(capacities: tuple[int, ...] = CAPACITIES, turns: int = TURNS) -> dict[str, Any]:
    """The worst bytes a configured entry over `capacities`, each in its own process, and
    the consumer's own peak RSS."""
    runs = [_child("--child", str(capacity), str(turns)) for capacity in capacities]
    worst = max(runs, key=lambda run: run["peak_bytes_per_entry"])
    return {
        "bytes_per_entry": worst["peak_bytes_per_entry"],
        "worst_capacity": worst["capacity"],
        "runs": runs,
        **_child("--consumer"),
    }


def main(argv: list[str]) -> int:
    if argv[:1] == ["--child"]:
        print(json.dumps(child(int(argv[1]), int(argv[2]))))
        return 0
    if argv[:1] == ["--consumer"]:
        print(json.dumps(consumer()))
        return 0
    from chalicelib.dedupe import MEMORY_BYTES_PER_ENTRY

    result = measure(QUICK_CAPACITIES if argv[:1] == ["--quick"] else CAPACITIES)
    for run in result["runs"]:
        print(
            f"capacity {run['capacity']:>9,}: {run['filled_bytes_per_entry']:>6} bytes an entry"
            f" once full, {run['peak_bytes_per_entry']:>6} at peak after {run['turns']} turns"
            f" of new keys"
        )
    print(
        f"worst: {result['bytes_per_entry']} bytes a configured entry (capacity"
        f" {result['worst_capacity']:,}); the bound uses {MEMORY_BYTES_PER_ENTRY}"
    )
    print(f"the consumer itself, every destination's client built: {result['consumer_peak_mb']} MB")
    return 0 if result["bytes_per_entry"] <= MEMORY_BYTES_PER_ENTRY else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
