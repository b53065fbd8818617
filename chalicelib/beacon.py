"""The beacon: `POST /events`, many hits in one request, each line what a GET's query string is.

`navigator.sendBeacon(url, lines)` (or `fetch(url, {method: "POST", body: lines, keepalive:
true})`) survives the page unloading, and one request carries up to 500 hits: one API Gateway
request, one Lambda invocation and a `SendMessageBatch` call per ten hits.

The body is `text/plain` (what sendBeacon sends for a string), UTF-8, one hit per line; each
line is exactly the query string a GET would carry (same parameters and rules, a `token` per
line for signed hits), parsed as `chalice local` parses a GET's (`+` is a space). Blank lines
are ignored; line numbers in the answer count every line of the body as sent (blank ones
too), from 1, so a sender maps them back. The request's headers meet the GET's filters once
(bots, page origin). A fault of the request as a whole (content type, size, encoding, no
hits, a filter) refuses it all with a 4xx and enqueues nothing; a line that breaks a rule is
refused alone and reported with its line number and reason, the others recorded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from typing import Final
from urllib.parse import parse_qs

from chalice.app import Response

from chalicelib import responses, telemetry
from chalicelib.events import Event
from chalicelib.hits import HitRefusedError
from chalicelib.pixel import Gate, parameter_kind, utc_now
from chalicelib.queue import BatchSendResult, EventSink
from chalicelib.signing.exceptions import KeysUnavailableError

MAX_BODY_BYTES: Final = 256 * 1024
MAX_HITS: Final = 500
# A line is one GET's query string, and a GET's URL cannot be much longer: CloudFront (in
# front of edge-optimized APIs) takes URLs up to 8,192 bytes, and API Gateway allows 10,240
# for the request line and headers together.
MAX_LINE_BYTES: Final = 8192
# No SendMessageBatch call starts after this long: with one call's worst case (about 9 s with
# the pixel's client) the answer still beats the function's 20 s timeout, and the lines not
# sent are reported as unavailable instead of lost in a timeout.
SEND_BUDGET_S: Final = 8.0
MEDIA_TYPE: Final = "text/plain"
_BOM: Final = "\ufeff"


class BeaconRefusedError(ValueError):
    """When the request as a whole is refused; str() is the reason sent back."""

    def __init__(self, status: int, reason: str, code: str) -> None:
        super().__init__(reason)
        self.status = status
        self.code = code


@dataclass(frozen=True)
class Line:
    """A non-blank line of a beacon's body and its 1-based number in the body as sent."""

    number: int
    text: str


def check_content_type(header: str | None) -> None:
    """`text/plain`, optionally with `charset=utf-8` (any case, quoted or not); else 415."""
    if header is None or not header.strip():
        raise BeaconRefusedError(
            415, "Content-Type is missing; send text/plain, one hit per line", "content_type"
        )
    media_type, *parameters = (part.strip() for part in header.split(";"))
    if media_type.lower() != MEDIA_TYPE:
        raise BeaconRefusedError(
            415,
            f"Content-Type {media_type[:64]!r} is not accepted; send text/plain, one hit per line",
            "content_type",
        )
    for parameter in parameters:
        name, _, value = parameter.partition("=")
        if name.strip().lower() == "charset" and value.strip().strip('"').lower() not in (
            "utf-8",
            "utf8",
        ):
            raise BeaconRefusedError(
                415, "charset must be utf-8 (the body is read as UTF-8)", "content_type"
            )


def check_framing(body: bytes, transfer_encoding: str | None) -> None:
    """411 for a body that was sent chunked and did not arrive: `chalice local`'s server
    reads a body by Content-Length only (pixel_middleware then closes the connection, so
    the chunks left on it are not read as another request)."""
    if transfer_encoding is not None and not body:
        raise BeaconRefusedError(
            411,
            "body was sent with Transfer-Encoding and did not arrive; send it with a"
            " Content-Length (sendBeacon and fetch with a string body do)",
            "length_required",
        )


def read_lines(body: bytes, content_type: str | None) -> list[Line]:
    """The body's hits, or BeaconRefusedError: 415 content type, 413 too large, 400 not
    UTF-8 or no hit. Checked in that order, the size before any decoding."""
    check_content_type(content_type)
    if len(body) > MAX_BODY_BYTES:
        raise BeaconRefusedError(
            413,
            f"body is {len(body)} bytes; at most {MAX_BODY_BYTES} (256 KiB): split it",
            "body_too_large",
        )
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as error:
        line = body.count(b"\n", 0, error.start) + 1
        raise BeaconRefusedError(
            400,
            f"body is not valid UTF-8 (line {line}, byte offset {error.start})",
            "bad_encoding",
        ) from None
    lines = [
        Line(number, raw.removesuffix("\r"))
        for number, raw in enumerate(text.removeprefix(_BOM).split("\n"), start=1)
        if raw.strip()
    ]
    if not lines:
        raise BeaconRefusedError(
            400, "body has no hits; send one query string per line", "empty_body"
        )
    if len(lines) > MAX_HITS:
        raise BeaconRefusedError(
            413, f"{len(lines)} hits; at most {MAX_HITS} per request: split it", "too_many_hits"
        )
    return lines


def line_parameters(line: Line) -> dict[str, list[str]]:
    """A line's parameters, decoded as `chalice local` decodes a GET's query string:
    percent-escapes that are not UTF-8 become U+FFFD, which the gate then refuses by name."""
    size = len(line.text.encode("utf-8", "surrogatepass"))
    if size > MAX_LINE_BYTES:
        raise HitRefusedError(
            "line",
            f"is {size} bytes; a hit is at most {MAX_LINE_BYTES}, as a GET's URL",
            "line_too_long",
        )
    return parse_qs(line.text, keep_blank_values=True, errors="replace")


class BeaconService:
    """Reads a beacon, admits each line through the pixel's gate and enqueues the accepted
    ones in batches. Answers 200 only when every line is either on the queue or refused."""

    def __init__(
        self, gate: Gate, queue: EventSink, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._gate = gate
        self._queue = queue
        self._clock = clock

    def handle(self, body: bytes, headers: Mapping[str, str]) -> Response:
        telemetry.count("BeaconsReceived")
        allow_origin: str | None = None
        try:
            allow_origin = self._gate.cors_origin(headers)
            response = self._handle(body, headers)
        except Exception as error:
            # A defect before the send (lines are enqueued only after all are read, and
            # nothing after the send can raise: see _handle), so none was recorded.
            telemetry.count("PixelErrors")
            telemetry.failure("beacon failed", error)
            response = responses.unavailable()
        finally:
            try:
                telemetry.publish()
            except Exception as error:  # bookkeeping: never changes the answer
                with suppress(Exception):
                    telemetry.failure("metrics not published", error)
        return responses.with_cors(response, allow_origin)

    def preflight(self, headers: Mapping[str, str]) -> Response:
        return responses.with_cors(responses.preflight(), self._gate.cors_origin(headers))

    def _handle(self, body: bytes, headers: Mapping[str, str]) -> Response:
        try:
            self._check_request(headers)
            check_framing(body, headers.get("transfer-encoding"))
            lines = read_lines(body, headers.get("content-type"))
        except BeaconRefusedError as refusal:
            telemetry.count("BeaconsRefused")
            telemetry.count_by_reason("BeaconsRefusedByReason", refusal.code)
            telemetry.logger.info("beacon refused", extra={"reason": refusal.code})
            return responses.refused(str(refusal), refusal.status)

        now = self._clock()
        accepted: list[tuple[Line, Event]] = []
        refused: list[tuple[int, str]] = []
        unavailable: list[int] = []
        reasons: dict[str, int] = {}
        kinds: dict[str, int] = {}
        keys_unavailable = False
        for line in lines:
            try:
                params = line_parameters(line)
                token = (params.get(self._gate.token_parameter) or [""])[0]
                if keys_unavailable and token:
                    unavailable.append(line.number)  # the keys were unreadable a line ago
                    continue
                hit = self._gate.admit(params, now)
            except HitRefusedError as refusal:
                refused.append((line.number, str(refusal)))
                reasons[refusal.code] = reasons.get(refusal.code, 0) + 1
                kind = parameter_kind(refusal.parameter, self._gate.token_parameter)
                kinds[kind] = kinds.get(kind, 0) + 1
                continue
            except KeysUnavailableError as error:
                # The signing keys could not be read: the line is not the sender's fault.
                telemetry.count("SigningKeysUnavailable")
                telemetry.logger.error("signing keys unavailable", extra={"error": str(error)})
                keys_unavailable = True
                unavailable.append(line.number)
                continue
            telemetry.count("UnknownParameters", len(hit.unknown_parameters))
            telemetry.count("UndefinedAttributesDropped", len(hit.dropped_parameters))
            accepted.append((line, hit.event))

        sent = self._queue.send_batch([event for _, event in accepted], SEND_BUDGET_S)
        # On the queue: from here on the answer is the report, whatever the bookkeeping does
        # (a client that retries an error would send every recorded line again).
        failed = set(sent.failed)
        unavailable.extend(accepted[index][0].number for index in sent.failed)
        may_have_landed = [accepted[index][0].number for index in sent.may_have_landed]
        recorded = len(accepted) - len(failed)
        try:
            self._account(recorded, refused, reasons, kinds, unavailable, sent)
        except Exception as error:
            with suppress(Exception):
                telemetry.failure("beacon recorded; counting it failed", error)
        return responses.beacon_report(recorded, refused, sorted(unavailable), may_have_landed)

    def _check_request(self, headers: Mapping[str, str]) -> None:
        try:
            self._gate.check_request(headers)
        except HitRefusedError as refusal:
            raise BeaconRefusedError(400, str(refusal), refusal.code) from None

    @staticmethod
    def _account(
        recorded: int,
        refused: list[tuple[int, str]],
        reasons: dict[str, int],
        kinds: dict[str, int],
        unavailable: list[int],
        sent: BatchSendResult,
    ) -> None:
        """Metrics and logs of one beacon, once its lines were sent."""
        # Lines are hits: the GET's counters include them, the Beacon* ones only them.
        telemetry.count("HitsAccepted", recorded)
        telemetry.count("BeaconLinesAccepted", recorded)
        telemetry.count("HitsRefused", len(refused))
        telemetry.count("BeaconLinesRefused", len(refused))
        for code, number in reasons.items():
            telemetry.count_by_reason("HitsRefusedByReason", code, number)
        telemetry.count("EnqueueFailures", len(sent.failed))
        telemetry.count("BeaconLinesUnavailable", len(sent.failed))
        telemetry.count("EnqueueOutcomeUnknown", len(sent.may_have_landed))
        if refused:
            # Reason codes and parameter kinds, never names: see pixel.parameter_kind.
            telemetry.logger.info(
                "beacon lines refused", extra={"reasons": reasons, "parameter_kinds": kinds}
            )
        if unavailable:
            telemetry.logger.error(
                "beacon lines not enqueued",
                extra={
                    "lines": len(unavailable),
                    "may_have_landed": len(sent.may_have_landed),
                    "error": sent.problem,
                },
            )
