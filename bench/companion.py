"""A process the benchmark runs beside it (`bench.servers`, `bench.doubles`): it prints one
JSON line saying what it serves, then answers each "count" line on its standard input with
one JSON line of numbers, and stops when that input closes.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
from collections.abc import Iterator, Sequence
from typing import IO, Any

from devtools.paths import ROOT


@contextlib.contextmanager
def companion(args: Sequence[str], log: IO[str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m <args>` with its standard error in `log`, and its first line ("" if it
    exited before answering). On the way out its input is closed and it is waited for,
    killed after 30 seconds."""
    process = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=log,
        text=True,
    )
    try:
        assert process.stdout is not None
        yield process, process.stdout.readline()
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def count(process: subprocess.Popen[str]) -> Any:
    """The companion's numbers so far."""
    assert process.stdin is not None
    assert process.stdout is not None
    process.stdin.write("count\n")
    process.stdin.flush()
    return json.loads(process.stdout.readline())
