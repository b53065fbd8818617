"""The local stack (`make dev`) as a subprocess on free ports, for end-to-end tests.

Only its output is observed, as a user would; it never leaves loopback (fake credentials,
AWS_ENDPOINT_URL on a closed port).
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CHROMIUM_IMAGE_ACCEPT = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
# The pixel refuses known tools (Python-urllib included) by default: send a browser's.
BROWSER_USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/156.0 Safari/537.36"
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
        "devtools.localstack.runner",
        "--pixel-port",
        "0",
        "--sqs-port",
        "0",
        "--pinpoint-port",
        "0",
        "--demo-port",
        "0",
        "--profiles-port",
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


@dataclass(frozen=True)
class Urls:
    pixel: str
    demo: str


def banner_urls(output: Output) -> Urls:
    output.wait_for(lambda line: "is running locally" in line, STARTUP_SECONDS, "the banner")

    def url(label: str) -> str:
        line = output.wait_for(lambda line: line.strip().startswith(label), 1, label)
        return line.split()[-1]

    return Urls(pixel=url("pixel:"), demo=url("demo page:"))


def get(url: str) -> tuple[int, str, bytes]:
    request = urllib.request.Request(
        url, headers={"Accept": CHROMIUM_IMAGE_ACCEPT, "User-Agent": BROWSER_USER_AGENT}
    )
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, response.headers.get("Content-Type", ""), response.read()
    except urllib.error.HTTPError as error:
        with error:
            return error.code, error.headers.get("Content-Type", ""), error.read()
