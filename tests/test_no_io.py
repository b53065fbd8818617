"""The guard in tests/unit/conftest.py catches a unit test that opens a socket or a process,
and lets one that does neither pass."""

from __future__ import annotations

import multiprocessing
import socket
import subprocess
import sys
from collections.abc import Callable
from http.server import ThreadingHTTPServer
from urllib.request import urlopen

import pytest

from tests.no_io import MESSAGE, UnitTestIOError, forbid_io

pytest_plugins = ["pytester"]

THROWAWAY_UNIT_TESTS = """
import socket
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.request import urlopen


def test_pure_computation_passes():
    assert sorted([3, 1, 2]) == [1, 2, 3]


def test_connecting_fails():
    urlopen("http://127.0.0.1:9/", timeout=1)


def test_starting_a_server_fails():
    ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)


def test_starting_a_process_fails():
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def test_a_datagram_fails():
    socket.socket(socket.AF_INET, socket.SOCK_DGRAM).sendto(b"x", ("127.0.0.1", 9))
"""


def test_a_throwaway_unit_test_doing_io_fails_with_the_reason(pytester: pytest.Pytester) -> None:
    pytester.makeconftest("from tests.unit.conftest import no_io  # noqa: F401\n")
    pytester.makepyfile(test_throwaway=THROWAWAY_UNIT_TESTS)
    result = pytester.runpytest("-p", "no:cacheprovider", "-W", "error")
    result.assert_outcomes(passed=1, failed=4)
    result.stdout.fnmatch_lines([f"*UnitTestIOError: {MESSAGE} (socket.connect)*"])
    result.stdout.fnmatch_lines([f"*UnitTestIOError: {MESSAGE} (socket.bind)*"])
    result.stdout.fnmatch_lines([f"*UnitTestIOError: {MESSAGE} (a subprocess)*"])
    result.stdout.fnmatch_lines([f"*UnitTestIOError: {MESSAGE} (socket.sendto)*"])


def _connect() -> None:
    with socket.create_connection(("127.0.0.1", 9), timeout=1):
        pass


def _serve() -> None:
    ThreadingHTTPServer(("127.0.0.1", 0), object)  # type: ignore[arg-type]


def _run() -> None:
    subprocess.run([sys.executable, "-c", "pass"], check=True)


def _fork() -> None:
    multiprocessing.get_context("fork").Process(target=print).start()


def _spawn() -> None:
    multiprocessing.get_context("spawn").Process(target=print).start()


def _fetch() -> None:
    urlopen("http://127.0.0.1:9/", timeout=1)


@pytest.mark.parametrize("attempt", [_connect, _serve, _run, _fork, _spawn, _fetch])
def test_the_guard_refuses_each_way_out(
    attempt: Callable[[], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    forbid_io(monkeypatch)
    with pytest.raises(UnitTestIOError, match="move this test to tests/integration"):
        attempt()


def test_the_guard_is_undone_after_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    forbid_io(monkeypatch)
    monkeypatch.undo()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
    subprocess.run([sys.executable, "-c", "pass"], check=True)
