"""moto behind a loopback proxy that refuses what AWS would refuse.

moto accepts what botocore's model and AWS's documentation forbid (an over-limit record, an
11-entry batch, a name with a space). Every request the tests and `make dev` send to moto
goes through `StrictMotoProxy` instead: it reads the request as the service's protocol
writes it (moto's own request parsers, by botocore's model: JSON, query, REST-JSON and
REST-XML), checks it with `devtools.standins.strict` (the whole model and AWS's documented
limits), answers a request AWS would refuse with a 400 in the service's own error form, and
forwards every other one to moto unchanged.

A request without a signature (moto's own `/moto-api/` calls) is forwarded unchecked: it is
not an AWS API call. `strict_moto()` starts moto and the proxy together.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import re
import urllib.parse
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any, Final
from xml.sax.saxutils import escape

from devtools.loopback import (
    LoopbackHandler,
    QuietServer,
    RelayService,
    ServiceServer,
    send_answer,
)
from devtools.standins import strict

_CREDENTIAL: Final = re.compile(r"Credential=[^/,\s]+/\d{8}/[^/]+/([^/]+)/aws4_request")


@dataclass(frozen=True)
class Refusal:
    """One request the proxy answered itself, and why."""

    service: str
    operation: str
    problems: tuple[str, ...]


class UnknownRequestError(Exception):
    """When a signed request names no operation of its service's model."""


class StrictMotoProxy(RelayService):
    """Forwards to `upstream` (moto's URL) every request AWS would accept; refuses the rest
    with a 400 in the service's error form. `refusals` records what it refused."""

    _name = "strict moto proxy"

    def __init__(self, upstream: str, host: str = "127.0.0.1", port: int = 0) -> None:
        super().__init__(upstream, host, port)
        self._refusals: list[Refusal] = []
        self.checked = 0  # requests checked against the rules (thread-safe under _lock)

    @property
    def refusals(self) -> list[Refusal]:
        with self._lock:
            return list(self._refusals)

    def _make_server(self) -> QuietServer:
        return ServiceServer(self._address, _Handler, self)

    def _relay(self, request: BaseHTTPRequestHandler) -> None:
        assert isinstance(request, LoopbackHandler)
        body = request.read_body()
        try:
            judged = judge(request.command, request.path, dict(request.headers.items()), body)
        except UnknownRequestError as error:
            send_answer(request, 400, *_plain_error("UnknownOperationException", str(error)))
            return
        if judged is not None:
            service, operation, found = judged
            with self._lock:
                self.checked += 1
                if found:
                    self._refusals.append(Refusal(service, operation, tuple(found)))
            if found:
                send_answer(request, 400, *error_answer(service, operation, "; ".join(found)))
                return
        answer = self._ask_upstream(request, body, timeout=120)
        send_answer(request, answer.status, answer.headers, answer.payload, answer.reason)


class _Handler(LoopbackHandler[StrictMotoProxy]):
    # HTTP/1.0, one request a connection, as moto's own server answers: a client that
    # relies on the server closing the connection (a test's proxy does) sees the same.
    disable_nagle_algorithm = True

    def do_GET(self) -> None:
        self.service._relay(self)

    def do_POST(self) -> None:
        self.service._relay(self)

    def do_PUT(self) -> None:
        self.service._relay(self)

    def do_DELETE(self) -> None:
        self.service._relay(self)

    def do_HEAD(self) -> None:
        self.service._relay(self)

    def do_PATCH(self) -> None:
        self.service._relay(self)


# Reading a request as its service's protocol writes it --------------------------------------


def judge(
    method: str, target: str, headers: Mapping[str, str], body: bytes
) -> tuple[str, str, list[str]] | None:
    """(service, operation, what AWS would refuse) for a signed request; None for one
    without a signature, which is not an AWS API call."""
    lowered = {key.lower(): value for key, value in headers.items()}
    split = urllib.parse.urlsplit(target)
    query = urllib.parse.parse_qs(split.query, keep_blank_values=True)
    scope = _CREDENTIAL.search(lowered.get("authorization", "")) or _CREDENTIAL.search(
        "Credential=" + "".join(query.get("X-Amz-Credential", []))
    )
    if scope is None:
        return None
    amz_target = lowered.get("x-amz-target")
    service = _service(scope.group(1), amz_target)
    protocol, name, labels = _operation(
        service, method, split.path, query, lowered, amz_target, body
    )
    params = _parse(service, protocol, name, method, split, headers, body, labels)
    return service, name, strict.problems(service, name, params)


@functools.cache
def _services_by_signing_name() -> dict[str, list[str]]:
    from botocore.session import get_session

    session = get_session()
    found: dict[str, list[str]] = {}
    for name in session.get_available_services():
        metadata = session.get_service_model(name).metadata
        signing = metadata.get("signingName") or metadata.get("endpointPrefix")
        found.setdefault(str(signing), []).append(name)
    return found


def _service(signing_name: str, amz_target: str | None) -> str:
    """The botocore service a signature's scope names (several share one: the one named
    like it, or the one whose target prefix the request carries)."""
    candidates = _services_by_signing_name().get(signing_name, [])
    if not candidates:
        raise UnknownRequestError(f"no service signs as {signing_name!r}")
    if amz_target:
        prefix = amz_target.rsplit(".", 1)[0]
        for name in candidates:
            if strict.service_model(name).metadata.get("targetPrefix") == prefix:
                return name
    return signing_name if signing_name in candidates else candidates[0]


def _operation(
    service: str,
    method: str,
    path: str,
    query: Mapping[str, list[str]],
    headers: Mapping[str, str],
    amz_target: str | None,
    body: bytes,
) -> tuple[str, str, dict[str, str]]:
    """(protocol, operation name, URI labels) of a request."""
    model = strict.service_model(service)
    protocols = list(model.metadata.get("protocols") or [model.protocol])
    if amz_target and "json" in protocols:
        return "json", amz_target.rsplit(".", 1)[-1], {}
    action = query.get("Action") or urllib.parse.parse_qs(body.decode("utf-8", "replace")).get(
        "Action"
    )
    if action and "query" in protocols:
        return "query", action[0], {}
    protocol = next((p for p in protocols if p.startswith("rest-")), None)
    if protocol is None:
        raise UnknownRequestError(f"{service}: a {method} request names no operation")
    for pattern, literals, name in _rest_routes(service, method):
        match = pattern.fullmatch(path)
        if match is None or not _literals_match(literals, query):
            continue
        if not _located_members_present(service, name, query, headers):
            continue
        labels = {label: urllib.parse.unquote(value) for label, value in match.groupdict().items()}
        return protocol, name, labels
    raise UnknownRequestError(f"{service}: no operation for {method} {path}")


def _literals_match(literals: tuple[tuple[str, str], ...], query: Mapping[str, list[str]]) -> bool:
    """The URI's literal query keys are sent (botocore leaves out S3's `x-id`, which only
    names the operation: when sent it must match)."""
    for key, value in literals:
        if key == "x-id":
            if key in query and value not in query[key]:
                return False
        elif key not in query or (value and value not in query[key]):
            return False
    return True


def _located_members_present(
    service: str, name: str, query: Mapping[str, list[str]], headers: Mapping[str, str]
) -> bool:
    """Every required member bound to a header or a query key is there: what tells apart
    operations on one path (S3's PutObject, CopyObject and UploadPart)."""
    shape = strict.operation(service, name).input_shape
    if shape is None:
        return True
    sent = {key.lower() for key in headers}
    for member in shape.required_members:
        serialization = shape.members[member].serialization
        location, wire = serialization.get("location"), serialization.get("name", member)
        if location == "header" and wire.lower() not in sent:
            return False
        if location == "querystring" and wire not in query:
            return False
    return True


@functools.cache
def _rest_routes(
    service: str, method: str
) -> list[tuple[re.Pattern[str], tuple[tuple[str, str], ...], str]]:
    """Each operation of `method` as (path pattern, literal query keys, name), the most
    specific first."""
    model = strict.service_model(service)
    routes = []
    for name in model.operation_names:
        http_trait = model.operation_model(name).http
        if http_trait.get("method", "POST") != method:
            continue
        uri = str(http_trait.get("requestUri", "/"))
        path, _, literal_query = uri.partition("?")
        literals = tuple(urllib.parse.parse_qsl(literal_query, keep_blank_values=True))
        pattern = re.sub(
            r"\\\{([A-Za-z0-9_]+)(\\\+)?\\\}",
            lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(2) else '[^/]+'})",
            re.escape(path),
        )
        literal_length = len(re.sub(r"\{[^}]+\}", "", path))
        routes.append((re.compile(pattern + "/?"), literals, name, literal_length))
    routes.sort(key=lambda route: (-len(route[1]), -route[3]))
    return [(pattern, literals, name) for pattern, literals, name, _ in routes]


def _parse(
    service: str,
    protocol: str,
    name: str,
    method: str,
    split: urllib.parse.SplitResult,
    headers: Mapping[str, str],
    body: bytes,
    labels: dict[str, str],
) -> dict[str, Any]:
    """The request's parameters as a boto3 call would have passed them, read by moto's
    parser for the protocol from botocore's model."""
    from moto.core.parse import PROTOCOL_PARSERS
    from moto.core.utils import get_service_model
    from werkzeug.datastructures import Headers, MultiDict

    operation_model = get_service_model(service).operation_model(name)
    values: MultiDict[str, str] = MultiDict(
        urllib.parse.parse_qsl(split.query, keep_blank_values=True)
    )
    content_type = {k.lower(): v for k, v in headers.items()}.get("content-type", "")
    if protocol == "query" and content_type.startswith("application/x-www-form-urlencoded"):
        values.update(
            MultiDict(
                urllib.parse.parse_qsl(body.decode("utf-8", "replace"), keep_blank_values=True)
            )
        )
    # A blob or string payload (S3's object body) is the body itself: no parser reads it.
    shape = operation_model.input_shape
    payload = None if shape is None else shape.serialization.get("payload")
    raw = payload is not None and shape.members[payload].type_name in ("blob", "string")
    parser = PROTOCOL_PARSERS[protocol](operation_model)
    parsed = dict(
        parser.parse(
            {
                "method": method,
                "values": values,
                "headers": Headers(list(headers.items())),
                "body": b"" if raw else body,
                "url_path": split.path,
                "url_params": labels,
            }
        )
    )
    if raw and payload is not None and body:
        parsed[payload] = body
    return parsed


# Answering a refusal as the service would ---------------------------------------------------


def error_code(service: str, name: str) -> str:
    """The error a refused request gets: the operation's own error for invalid input when
    the model declares one (InvalidArgumentException, ValidationException, ...), else the
    protocol's generic one."""
    for shape in strict.operation(service, name).error_shapes:
        status = shape.metadata.get("error", {}).get("httpStatusCode", 400)
        if status == 400 and any(
            word in shape.name for word in ("InvalidArgument", "InvalidParameter", "Validation")
        ):
            return str(shape.metadata.get("error", {}).get("code") or shape.name)
    protocol = strict.service_model(service).protocol
    return {"query": "ValidationError", "rest-xml": "InvalidArgument"}.get(
        protocol, "ValidationException"
    )


def error_answer(service: str, name: str, message: str) -> tuple[list[tuple[str, str]], bytes]:
    """Headers and body of a 400 for `message`, in the service's protocol."""
    code = error_code(service, name)
    request_id = str(uuid.uuid4())
    model = strict.service_model(service)
    protocol = model.protocol
    if protocol in ("query", "ec2"):
        xml = (
            f"<ErrorResponse><Error><Type>Sender</Type><Code>{escape(code)}</Code>"
            f"<Message>{escape(message)}</Message></Error><RequestId>{request_id}</RequestId>"
            "</ErrorResponse>"
        )
        return [("Content-Type", "text/xml"), ("x-amzn-RequestId", request_id)], xml.encode()
    if protocol == "rest-xml":
        xml = (
            f"<Error><Code>{escape(code)}</Code><Message>{escape(message)}</Message>"
            f"<RequestId>{request_id}</RequestId></Error>"
        )
        return [("Content-Type", "application/xml"), ("x-amz-request-id", request_id)], (
            xml.encode()
        )
    headers = [("x-amzn-RequestId", request_id), ("x-amzn-ErrorType", code)]
    if protocol == "json":
        version = model.metadata.get("jsonVersion", "1.0")
        headers.append(("Content-Type", f"application/x-amz-json-{version}"))
        if "awsQueryCompatible" in model.metadata:
            headers.append(("x-amzn-query-error", f"{code};Sender"))
    else:
        headers.append(("Content-Type", "application/json"))
    return headers, json.dumps({"__type": code, "message": message}).encode()


def _plain_error(code: str, message: str) -> tuple[list[tuple[str, str]], bytes]:
    body = json.dumps({"__type": code, "message": message}).encode()
    return [("Content-Type", "application/json"), ("x-amzn-ErrorType", code)], body


@contextlib.contextmanager
def strict_moto(host: str = "127.0.0.1", port: int = 0) -> Iterator[StrictMotoProxy]:
    """moto's server on a free port with the strict proxy in front on `port`: clients use
    the proxy's `url`."""
    from moto.server import ThreadedMotoServer

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto: one line per call
    moto = ThreadedMotoServer(ip_address=host, port=0, verbose=False)
    moto.start()
    try:
        moto_host, moto_port = moto.get_host_and_port()
        with StrictMotoProxy(f"http://{moto_host}:{moto_port}", host, port) as proxy:
            yield proxy
    finally:
        moto.stop()
