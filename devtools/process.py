"""A tool's life as a process: stopping cleanly on Ctrl-C / SIGTERM, and running the
console scripts installed beside it. Shared by every room, so none borrows another's."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from types import FrameType

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextlib.contextmanager
def stop_on_signals(
    stop: threading.Event | None = None,
    *,
    notice: str | None = None,
    second_aborts: bool = False,
) -> Iterator[threading.Event]:
    """Ctrl-C and SIGTERM set `stop` (a new event if None) instead of raising, so the work
    in flight finishes and everything shuts down in order; the previous handlers come back
    on exit. `notice` is printed to stderr on the first signal; with `second_aborts` a
    second one raises KeyboardInterrupt (the user insists)."""
    event = stop if stop is not None else threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if second_aborts and event.is_set():
            raise KeyboardInterrupt
        if notice is not None:
            print(notice, file=sys.stderr)
        event.set()

    previous = {sig: signal.signal(sig, on_signal) for sig in STOP_SIGNALS}
    try:
        yield event
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run(command: Sequence[str], cwd: Path, env: dict[str, str] | None = None) -> int:
    """Run a tool with its output going straight to the user's terminal."""
    print("$ " + " ".join(command), flush=True)
    return subprocess.run(list(command), cwd=cwd, env=env, check=False).returncode


def tool(name: str) -> str:
    """A console script installed beside this interpreter (chalice, cfn-lint)."""
    return str(Path(sys.executable).parent / name)


# The one place a command decides its AWS region -------------------------------------------

REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")


def aws_region(profile: str | None = None, environ: MutableMapping[str, str] = os.environ) -> str:
    """The region every AWS call of this command and its child processes uses: AWS_REGION,
    else AWS_DEFAULT_REGION, else the profile's `region` (AWS_PROFILE or `profile`); "" when
    none is set. Found, it is written to both variables, because boto3 and Chalice read
    AWS_DEFAULT_REGION only, and the AWS CLI and other SDKs prefer AWS_REGION.

    A profile that does not exist raises botocore's ProfileNotFound."""
    region = next((environ[name].strip() for name in REGION_VARIABLES if environ.get(name)), "")
    if not region:
        import boto3

        session = boto3.Session(profile_name=profile or environ.get("AWS_PROFILE") or None)
        region = session.region_name or ""
    if region:
        for name in REGION_VARIABLES:
            environ[name] = region
    return region
