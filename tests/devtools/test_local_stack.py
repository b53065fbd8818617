"""`make dev` end to end: a real pixel hit travels through SQS to the Pinpoint stand-in.

The stack runs as a subprocess on free ports, exactly as `make dev` runs it (moto, the
stand-in, `chalice local`, the in-process consumer); only its stdout is observed. It never
leaves loopback: its credentials are fake and AWS_ENDPOINT_URL points at a closed port.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CHROMIUM_IMAGE_ACCEPT = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
STARTUP_SECONDS = 60.0
DELIVERY_SECONDS = 20.0
STOP_SECONDS = 20.0

# No proxy from the environment may see loopback requests.
_opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class Output:
    """The stack's merged stdout and stderr, collected by a thread so the pipe never fills."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._lines: list[str] = []
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(process,), daemon=True)
        self._thread.start()

    def _read(self, process: subprocess.Popen[str]) -> None:
        assert process.stdout is not None
        for line in process.stdout:
            with self._changed:
                self._lines.append(line.rstrip("\n"))
                self._changed.notify_all()

    @property
    def lines(self) -> list[str]:
        with self._changed:
            return list(self._lines)

    def wait_for(self, found: Callable[[str], bool], timeout: float, what: str) -> str:
        """The first line for which `found` is true, waiting up to `timeout` seconds for it."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                reading = self._thread.is_alive()  # before scanning: no line slips past
                for line in self._lines:
                    if found(line):
                        return line
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not reading:
                    break
                self._changed.wait(min(remaining, 0.5))
        shown = "\n".join(self.lines[-60:])
        pytest.fail(f"no line with {what} within {timeout:.0f} s; the stack printed:\n{shown}")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)


@contextlib.contextmanager
def local_stack(*extra: str) -> Iterator[tuple[subprocess.Popen[str], Output]]:
    """The stack on free ports, in its own process group so nothing outlives the test."""
    command = [
        sys.executable,
        "-m",
        "devtools.local_stack",
        "--pixel-port",
        "0",
        "--sqs-port",
        "0",
        "--pinpoint-port",
        "0",
        *extra,
    ]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    with subprocess.Popen(
        command,
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    ) as process:
        output = Output(process)
        try:
            yield process, output
        finally:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # a no-op once it stopped cleanly
            process.wait(timeout=STOP_SECONDS)
            output.join(STOP_SECONDS)


def pixel_url(output: Output) -> str:
    output.wait_for(lambda line: "local stack ready" in line, STARTUP_SECONDS, "the banner")
    line = output.wait_for(lambda line: line.strip().startswith("pixel:"), 1, "the pixel URL")
    return line.split()[-1]


def get(url: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(url, headers={"Accept": CHROMIUM_IMAGE_ACCEPT})
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Content-Type", ""), error.read()


def test_a_hit_reaches_pinpoint_and_a_refused_one_does_not() -> None:
    with local_stack("--exit-after", "120") as (process, output):
        pixel = pixel_url(output)

        # Refused first: had it been queued, it would reach Pinpoint before the good one.
        status, content_type, body = get(f"{pixel}?endpoint_id=refused-endpoint&evat_x=1")
        assert status == 400
        assert content_type.startswith("text/plain")
        assert body.decode() == "event: is required\n"

        status, content_type, body = get(
            f"{pixel}?event=purchase&endpoint_id=demo-endpoint"
            "&evat_product=shoes&evmt_price=49.90&gtmcb=123"
        )
        assert status == 200
        assert content_type == "image/gif"
        assert body.startswith(b"GIF89a")

        delivered = output.wait_for(
            lambda line: line.startswith("pinpoint <- "), DELIVERY_SECONDS, "a Pinpoint event"
        )
        assert delivered == (
            'pinpoint <- purchase endpoint=demo-endpoint attrs={"product": "shoes"}'
            ' metrics={"price": 49.9}'
        )
        output.wait_for(
            lambda line: line == "consumer: batch received=1 deleted=1 left=0",
            DELIVERY_SECONDS,
            "the consumer's batch",
        )
        pinpoint = [line for line in output.lines if line.startswith("pinpoint <- ")]
        assert pinpoint == [delivered]  # the refused hit never reached the queue

        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=STOP_SECONDS) == 0
        output.join(STOP_SECONDS)
        assert output.lines[-1] == "stopped"


def test_exit_after_stops_cleanly_on_its_own() -> None:
    with local_stack("--exit-after", "0") as (process, output):
        pixel = pixel_url(output)
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+/events", pixel)
        assert process.wait(timeout=STOP_SECONDS) == 0
        output.join(STOP_SECONDS)
        assert output.lines[-1] == "stopped"
