"""The unit tests' rule, enforced: no sockets, no processes.

A unit test that connects, binds, sends a datagram or starts a process fails at that call with
the reason, instead of quietly depending on the machine. In-process fakes need none of these."""

from __future__ import annotations

import _posixsubprocess
import os
import socket
import subprocess
from typing import Any, NoReturn

import pytest

MESSAGE = "unit tests do no I/O: move this test to tests/integration"


class UnitTestIOError(AssertionError):
    """When a test under tests/unit/ opens a connection or starts a process.

    Not an OSError: clients retry or swallow those, and the test must fail with this message."""


def _refuse(what: str) -> Any:
    def refused(*args: object, **kwargs: object) -> NoReturn:
        raise UnitTestIOError(f"{MESSAGE} ({what})")

    return refused


def _refuse_socket(what: str) -> Any:
    def refused(sock: socket.socket, *args: object, **kwargs: object) -> NoReturn:
        sock.close()  # callers clean up after OSError only; this is not one, so nothing leaks
        raise UnitTestIOError(f"{MESSAGE} ({what})")

    return refused


# Every way a test could reach a socket or another process: subprocess starts one through its
# own reference to fork_exec (or os.posix_spawn), multiprocessing through the module's, and
# os.spawn* through os.fork.
SOCKET_CALLS = ("connect", "connect_ex", "bind", "sendto")
PROCESS_CALLS = ("fork", "forkpty", "posix_spawn", "posix_spawnp", "system")


def forbid_io(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every socket and process call raise until monkeypatch undoes it."""
    for name in SOCKET_CALLS:
        monkeypatch.setattr(socket.socket, name, _refuse_socket(f"socket.{name}"))
    for name in PROCESS_CALLS:
        if hasattr(os, name):
            monkeypatch.setattr(os, name, _refuse(f"os.{name}"))
    monkeypatch.setattr(_posixsubprocess, "fork_exec", _refuse("a subprocess"))
    if hasattr(subprocess, "_fork_exec"):
        monkeypatch.setattr(subprocess, "_fork_exec", _refuse("a subprocess"))
