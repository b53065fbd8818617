"""Child processes as the local stack runs them (devtools/process.py): up when they answer
HTTP, named when they fail to come up, stopped even when they ignore SIGTERM."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from devtools import process
from devtools.offline import HOST
from devtools.process import free_port, port_is_free, stop_process, wait_until_answering


@pytest.fixture
def children() -> Iterator[list[subprocess.Popen[bytes]]]:
    started: list[subprocess.Popen[bytes]] = []
    yield started
    for child in started:
        child.kill()
        child.wait()
        if child.stdout is not None:
            child.stdout.close()


def python(children: list[subprocess.Popen[bytes]], code: str) -> subprocess.Popen[bytes]:
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE)
    children.append(child)
    return child


def test_a_server_is_up_once_it_answers_and_its_port_is_then_taken(
    children: list[subprocess.Popen[bytes]],
) -> None:
    port = free_port()
    assert port_is_free(port)
    server = subprocess.Popen(
        [sys.executable, "-m", "http.server", "--bind", HOST, str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    children.append(server)
    wait_until_answering(f"http://{HOST}:{port}/", server, threading.Event(), name="server")
    assert not port_is_free(port)


def test_a_process_that_exits_before_answering_is_named_with_its_status(
    children: list[subprocess.Popen[bytes]],
) -> None:
    child = python(children, "import sys; sys.exit(3)")
    with pytest.raises(SystemExit, match=r"^worker exited with status 3$"):
        wait_until_answering(
            f"http://{HOST}:{free_port()}/", child, threading.Event(), name="worker"
        )


def test_a_process_that_never_answers_is_given_up_on_after_the_timeout(
    children: list[subprocess.Popen[bytes]],
) -> None:
    child = python(children, "import time; time.sleep(60)")
    url = f"http://{HOST}:{free_port()}/"
    expected = f"^{re.escape(f'worker did not answer on {url} within 0.5 s')}$"
    with pytest.raises(SystemExit, match=expected):
        wait_until_answering(url, child, threading.Event(), name="worker", timeout=0.5)


def test_a_process_that_ignores_sigterm_is_killed(
    children: list[subprocess.Popen[bytes]], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(process, "STOP_TIMEOUT_SECONDS", 0.5)
    child = python(
        children,
        "import signal, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n",
    )
    assert child.stdout is not None
    assert child.stdout.readline() == b"ready\n"
    stop_process(child)
    assert child.returncode == -signal.SIGKILL
