"""A loopback proxy in front of a local AWS server that misbehaves on purpose.

Tests and the soak point a boto3 client at it (`AWS_ENDPOINT_URL_SQS=proxy.url`) to see what
the code does when an answer is slow or never arrives although the request was carried out:
the failures that duplicate or lose messages, and that moto alone cannot produce.

Faults are keyed by the API action: `X-Amz-Target`'s operation for JSON protocols
(`AmazonSQS.DeleteMessageBatch` → `DeleteMessageBatch`), else the query protocol's `Action`.
A test helper: only tests use it, so it lives under tests/.
"""

from __future__ import annotations

import time
import urllib.parse
from collections import Counter
from dataclasses import dataclass
from enum import Enum
from http.server import BaseHTTPRequestHandler

from devtools.loopback import (
    LoopbackHandler,
    QuietServer,
    RelayService,
    ServiceServer,
    send_answer,
)


class Fault(Enum):
    """What the proxy does to one call of an action."""

    DELAY = "delay"  # forward, wait, then answer (the caller may time out meanwhile)
    DROP_ANSWER = "drop_answer"  # forward (the upstream carries it out), then hang up


@dataclass
class _Rule:
    fault: Fault
    remaining: int | None  # None: every call
    seconds: float


class FaultProxy(RelayService):
    """Forwards every request to `upstream` (e.g. a moto server's URL), applying the faults
    planned for its action. Thread-safe; counts every action it saw."""

    _name = "fault proxy"

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(upstream, host, port)
        self._rules: dict[str, list[_Rule]] = {}
        self.calls: Counter[str] = Counter()
        self.faults_applied: Counter[str] = Counter()

    # Planning ------------------------------------------------------------------------------

    def delay(self, action: str, seconds: float, times: int | None = None) -> None:
        """Answer the next `times` calls of `action` (every call if None) `seconds` late."""
        self._plan(action, _Rule(Fault.DELAY, times, seconds))

    def drop_answer(self, action: str, times: int | None = 1) -> None:
        """Carry out the next `times` calls of `action`, then close the connection unanswered."""
        self._plan(action, _Rule(Fault.DROP_ANSWER, times, 0.0))

    def clear(self, action: str | None = None) -> None:
        with self._lock:
            if action is None:
                self._rules.clear()
            else:
                self._rules.pop(action, None)

    def _plan(self, action: str, rule: _Rule) -> None:
        with self._lock:
            self._rules.setdefault(action, []).append(rule)

    def _take(self, action: str) -> _Rule | None:
        with self._lock:
            self.calls[action] += 1
            rules = self._rules.get(action, [])
            while rules:
                rule = rules[0]
                if rule.remaining is None:
                    self.faults_applied[action] += 1
                    return rule
                if rule.remaining > 0:
                    rule.remaining -= 1
                    if rule.remaining == 0:
                        rules.pop(0)
                    self.faults_applied[action] += 1
                    return rule
                rules.pop(0)
            return None

    # Serving -------------------------------------------------------------------------------

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    def _relay(self, request: BaseHTTPRequestHandler) -> None:
        assert isinstance(request, LoopbackHandler)
        body = request.read_body()  # Content-Length or chunked: relayed with its length
        action = api_action(request.headers.get("X-Amz-Target"), body)
        rule = self._take(action)
        answer = self._ask_upstream(request, body, timeout=60)
        if rule is not None and rule.fault is Fault.DROP_ANSWER:
            request.close_connection = True
            request.connection.shutdown(2)  # the caller sees a reset, as after a network cut
            return
        if rule is not None and rule.fault is Fault.DELAY:
            self._stopping.wait(rule.seconds)
        # A caller that gave up waiting meanwhile: the upstream has still carried it out.
        send_answer(request, answer.status, answer.headers, answer.payload, answer.reason)


class _Handler(LoopbackHandler[FaultProxy]):
    # Unlike the stand-ins, connections stay open between calls (HTTP/1.1 keep-alive).
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: with Nagle's algorithm and the client's
    # delayed ACK every answer would wait 40 ms.
    disable_nagle_algorithm = True

    def do_POST(self) -> None:
        self.service._relay(self)

    def do_GET(self) -> None:
        self.service._relay(self)


def api_action(target: str | None, body: bytes) -> str:
    """The API action of a request, whichever protocol the client speaks."""
    if target:
        return target.rsplit(".", 1)[-1]
    fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
    return fields.get("Action", [""])[0]


def wait_for_calls(proxy: FaultProxy, action: str, count: int, timeout: float = 10.0) -> bool:
    """True once the proxy has seen `count` calls of `action` (for tests that race a client)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proxy.calls[action] >= count:
            return True
        time.sleep(0.01)
    return False
