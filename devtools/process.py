"""A tool's life as a process: stopping cleanly on Ctrl-C / SIGTERM, running the console
scripts installed beside it, the child processes it starts (a loopback port for each, up
when it answers, stopped by asking and then insisting) and the AWS region it and they use.
Shared by every room, so none borrows another's."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, MutableMapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Final

from devtools.offline import HOST

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STARTUP_TIMEOUT_SECONDS: Final = 60.0
STOP_TIMEOUT_SECONDS: Final = 5.0


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


# Child processes: their ports, their start and their stop ---------------------------------


def free_port() -> int:
    """A loopback port nothing listens on now (the OS picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return int(probe.getsockname()[1])


def port_is_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # As the servers do: a port whose last connections are in TIME_WAIT is free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((HOST, port))
        except OSError:
            return False
        return True


_no_proxy_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def wait_until_answering(
    url: str,
    process: subprocess.Popen[bytes],
    stopping: threading.Event,
    *,
    name: str,
    timeout: float = STARTUP_TIMEOUT_SECONDS,
) -> None:
    """Return once anything answers HTTP at `url`; fail, naming the process `name`, if it
    exits or does not answer within `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not stopping.is_set():
        if process.poll() is not None:
            raise SystemExit(f"{name} exited with status {process.returncode}")
        try:
            with _no_proxy_opener.open(url, timeout=1):
                return
        except urllib.error.HTTPError:
            return  # an error page is still an answer: the server is up
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"{name} did not answer on {url} within {timeout:g} s")
        stopping.wait(0.2)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Ask, then insist."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(sig)
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=STOP_TIMEOUT_SECONDS)


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
