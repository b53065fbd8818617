"""What the AWS stand-ins share: one lock over rules and records, the records themselves,
AWS's rules as the request check (`strict`), rest-json answers, and serving from the command line.

Each stand-in keeps what is its own: its routes, its rules and how it judges a request.
"""

from __future__ import annotations

import dataclasses
import json
import re
import sys
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Generic, TypeVar
from urllib.parse import unquote

from devtools.loopback import LoopbackHandler, LoopbackService, ServiceT
from devtools.process import stop_on_signals
from devtools.standins import strict

JsonObject = dict[str, Any]
# (HTTP method, path pattern whose groups are the path parameters, operation name)
Route = tuple[str, re.Pattern[str], str]
RequestT = TypeVar("RequestT")
AcceptedT = TypeVar("AcceptedT")


class RequestError(Exception):
    """When a request fails as a whole; answered as a rest-json error with its status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class StandIn(LoopbackService, Generic[RequestT, AcceptedT]):
    """A stand-in's records: every request with the status it got, and what it accepted.

    One lock guards rules and records: the server answers each request on its own thread,
    and tests read records and set rules from theirs. `on_accept` is called for each
    accepted record, in order, with the lock held.
    """

    def __init__(
        self,
        host: str,
        port: int,
        on_accept: Callable[[AcceptedT], None] | None = None,
    ) -> None:
        super().__init__(host, port)
        self._on_accept = on_accept
        self._lock = threading.RLock()
        self._requests: list[RequestT] = []
        self._accepted: list[AcceptedT] = []
        self._delays: deque[float] = deque()

    def delay_next_requests(self, seconds: float, count: int = 1) -> None:
        """Answer each of the next `count` requests `seconds` late. The request is processed
        (and recorded) first, as a slow service would have done, so a client that times out
        and retries sends it twice; requests that arrive meanwhile are not held up."""
        with self._lock:
            self._delays.extend([seconds] * count)

    def _next_delay(self) -> float:
        """How late to answer the request being decided (call with the lock held)."""
        return self._delays.popleft() if self._delays else 0.0

    def _wait_to_answer(self, delay: float) -> bool:
        """Wait `delay` seconds before answering; False if the stand-in stops meanwhile (the
        connection is then dropped unanswered)."""
        return not (delay > 0 and self._stopping.wait(delay))

    @property
    def requests(self) -> list[RequestT]:
        """Every request received, in arrival order (a copy)."""
        with self._lock:
            return list(self._requests)

    def _accepted_records(self) -> list[AcceptedT]:
        with self._lock:
            return list(self._accepted)

    def _record(self, request: RequestT) -> None:
        self._requests.append(request)

    def _accept(self, record: AcceptedT) -> None:
        self._accepted.append(record)
        if self._on_accept is not None:
            self._on_accept(record)

    def _forget_records(self) -> None:
        with self._lock:
            self._requests.clear()
            self._accepted.clear()


def model_problems(service: str, operation: str, params: Mapping[str, Any]) -> str:
    """What AWS would refuse in a request ("" if nothing): the whole of botocore's model
    and AWS's documented limits (`devtools.standins.strict`), so a request that a client
    with validation turned off could send is refused here as the service would."""
    return "; ".join(strict.problems(service, operation, params))


def json_object(raw: bytes) -> JsonObject:
    """`raw` as a JSON object; ValueError saying which it is not."""
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise ValueError("Body is not JSON") from None
    if not isinstance(parsed, dict):
        raise ValueError("Body is not a JSON object")
    return parsed


class RestJsonHandler(LoopbackHandler[ServiceT]):
    """Answers as AWS's rest-json protocol does: a JSON body, the request id, and on an
    error its type, which is how botocore tells one error from another."""

    def send_answer(
        self,
        status: int,
        body: JsonObject,
        request_id: str | None = None,
        error_type: str | None = None,
    ) -> None:
        headers = [("x-amzn-RequestId", request_id or str(uuid.uuid4()))]
        if error_type is not None:
            headers.append(("x-amzn-ErrorType", error_type))
        self.send_json(status, body, headers)

    def route(self, routes: Iterable[Route], path: str) -> tuple[str, list[str]] | None:
        """The operation `routes` give this request's method and `path`, with the path's
        parameters unquoted; None when no route matches."""
        for method, pattern, operation in routes:
            match = pattern.fullmatch(path)
            if method == self.command and match:
                return operation, [unquote(group) for group in match.groups()]
        return None

    def send_unknown_operation(self, path: str, message_member: str = "Message") -> None:
        """The 404 a request no route matches is answered with."""
        message = f"No operation for {self.command} {path}"
        self.send_answer(404, {message_member: message}, error_type="UnknownOperationException")


def print_record(record: Any) -> None:
    """One accepted record (a dataclass) as a JSON line on stdout."""
    print(json.dumps(dataclasses.asdict(record), sort_keys=True), flush=True)


def serve(service: LoopbackService, banner: Callable[[str], str]) -> int:
    """Serve until Ctrl-C or SIGTERM, saying where (`banner(url)`) on stderr."""
    with stop_on_signals() as done, service:
        print(banner(service.url), file=sys.stderr, flush=True)
        done.wait()
    return 0
