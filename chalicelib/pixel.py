"""The pixel: one hit in, one message on the queue, and the GIF only once it is there.

Before a hit's parameters are read, two filters for honest clients run (known bots by
User-Agent, and an optional page-origin allowlist); then a signed hit's token is checked
against the endpoint and user the hit names (docs/signed-hits.md, docs/threat-model.md).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from chalice.app import Response

from chalicelib import responses, telemetry
from chalicelib.encoding import check_encoding
from chalicelib.hits import (
    DELIVERY_FIELDS,
    PREFIXES,
    SINGLE_VALUED,
    TOKEN_PARAMETER,
    AcceptedHit,
    HitPolicy,
    HitRefusedError,
    parse_hit,
)
from chalicelib.queue import EventSink, QueueUnavailableError
from chalicelib.signing.exceptions import KeysUnavailableError, TokenRefusedError

if TYPE_CHECKING:
    # Each loads only when configured (config.Settings, runtime.pixel_service): cold start.
    from chalicelib.bots import BotFilter
    from chalicelib.origins import OriginPolicy
    from chalicelib.signing.settings import SigningSettings
    from chalicelib.signing.verify import TokenVerifier

# BotFilter's reason for a request without a User-Agent (chalicelib.bots, loaded only when
# the filter is on: the name is repeated here rather than imported).
EMPTY_USER_AGENT = "empty_user_agent"
# What `_admit` names when a request header, not a parameter, is refused.
HEADERS = frozenset({"User-Agent", "Origin", "Referer", "Origin/Referer"})
# The request headers the pixel reads (the filters) or echoes (CORS). A control character
# in one (a line break, NUL, ...) is malformed (RFC 9110, section 5.5) and would break the
# answer that echoes it, so it is refused before anything is queued. Tab is allowed.
READ_HEADERS: Final = ("User-Agent", "Origin", "Referer")
_CONTROL: Final = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
# An Origin as browsers serialize it (RFC 6454): the only form echoed in CORS headers.
_SERIALIZED_ORIGIN: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[A-Za-z0-9.-]+(:[0-9]{1,5})?")


def utc_now() -> datetime:
    return datetime.now(UTC)


def parameter_kind(parameter: str, token_parameter: str) -> str:
    """What sort of parameter a refusal is about, for logs: the name itself can be an
    identifier (`usat_alice@example.com`, or anything a client typed), and logs carry none."""
    if parameter in HEADERS:
        return "header"
    if parameter == token_parameter:
        return "token"
    if parameter in SINGLE_VALUED or set(parameter.split("/")) <= set(PREFIXES):
        return parameter  # a fixed name, or a rule's group such as "evat_/evmt_"
    for prefix in PREFIXES:
        if parameter.startswith(prefix):
            return prefix
    if parameter.replace("_", "").lower() in DELIVERY_FIELDS:
        return "delivery_field"
    return "unknown"


@dataclass(frozen=True)
class Gate:
    """Who may send what: the anonymous policy, and the filters and token rules before it.
    A filter left None is off (no bot filter, every page origin, no signed hits)."""

    policy: HitPolicy
    signing: SigningSettings | None = None
    bots: BotFilter | None = None
    origins: OriginPolicy | None = None
    verifier: TokenVerifier | None = None

    @property
    def token_parameter(self) -> str:
        return TOKEN_PARAMETER if self.signing is None else self.signing.parameter

    @property
    def require_signed_hits(self) -> bool:
        return self.signing is not None and self.signing.require_signed_hits

    def check_request(self, headers: Mapping[str, str]) -> None:
        """The request's headers, well-formed, then the filters on them (bots, page origin):
        HitRefusedError if one refuses. A beacon's lines share its headers, so they are
        checked once per request."""
        for name in READ_HEADERS:
            if _CONTROL.search(headers.get(name.lower()) or ""):
                raise HitRefusedError(
                    name,
                    "holds a control character (a line break, NUL, ...); not recorded",
                    "header_malformed",
                )
        if self.bots is not None:
            bot = self.bots.reason(headers.get("user-agent"))
            if bot == EMPTY_USER_AGENT:
                raise HitRefusedError(
                    "User-Agent",
                    "is missing or blank; every browser sends one, so the hit is taken for "
                    "a script's (BOT_FILTER)",
                    bot,
                )
            if bot is not None:
                raise HitRefusedError(
                    "User-Agent", "a known crawler or tool; not recorded (BOT_FILTER)", bot
                )
        if self.origins is not None:
            refusal = self.origins.refusal(headers.get("origin"), headers.get("referer"))
            if refusal is not None:
                header, reason = refusal
                raise HitRefusedError(header, reason, "origin")

    def cors_origin(self, headers: Mapping[str, str]) -> str | None:
        """The `Access-Control-Allow-Origin` a script on the requesting page may read the
        answer with: `*` when every page may send, else the request's Origin if allowed and
        exactly an origin as browsers send it (never anything else of the request's)."""
        if self.origins is None or not self.origins.enabled:
            return "*"
        origin = (headers.get("origin") or "").strip()
        if _SERIALIZED_ORIGIN.fullmatch(origin) and self.origins.allows(origin, None):
            return origin
        return None

    def admit(self, params: Mapping[str, Sequence[str]], now: datetime) -> AcceptedHit:
        """One hit's parameters (a GET's query string, or a beacon's line), token included:
        the hit, or HitRefusedError naming the rule. The request's headers are checked apart
        (`check_request`)."""
        check_encoding(params)
        name = self.token_parameter
        tokens = params.get(name) or []
        if len(tokens) > 1:
            raise HitRefusedError(name, f"given {len(tokens)} times; send it once", "repeated")
        token = tokens[0] if tokens and tokens[0] else None
        if token is None and self.require_signed_hits:
            raise HitRefusedError(name, "is required (REQUIRE_SIGNED_HITS)", "token_missing")
        if token is not None and self.verifier is None:
            raise HitRefusedError(name, "signed hits are not configured here", "token_unexpected")
        rest = {key: values for key, values in params.items() if key != name}
        if token is None or self.verifier is None or self.signing is None:
            return parse_hit(rest, self.policy, now)
        from chalicelib.signing.settings import signed_policy  # loaded with the verifier

        # A signed hit may write more: parse with the signed policy, then check that the
        # token vouches for exactly the endpoint (and user) this hit writes to.
        hit = parse_hit(rest, signed_policy(self.policy, self.signing), now)
        try:
            self.verifier.verify(token, hit.event.endpoint_id, hit.event.profile.user_id, now)
        except TokenRefusedError as refusal:
            raise HitRefusedError(name, str(refusal), f"token_{refusal.code}") from None
        return hit


class PixelService:
    """Validates a hit and enqueues it. Answers 200 only for an event SQS has taken, and
    never an error once it has: a client that retries a 5xx would send the event again."""

    def __init__(
        self, gate: Gate, queue: EventSink, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._gate = gate
        self._queue = queue
        self._clock = clock

    def handle(
        self, params: Mapping[str, Sequence[str]], headers: Mapping[str, str] | None = None
    ) -> Response:
        headers = headers or {}
        allow_origin: str | None = None
        try:
            # A page may read the answer with fetch() too (an <img> ignores CORS).
            allow_origin = self._gate.cors_origin(headers)
            return self._handle(params, headers, allow_origin)
        except KeysUnavailableError as error:
            # The signing keys could not be read: not the client's fault, nothing recorded.
            telemetry.count("SigningKeysUnavailable")
            telemetry.logger.error("signing keys unavailable", extra={"error": str(error)})
            return responses.with_cors(responses.unavailable(), allow_origin)
        except Exception as error:
            # A defect before the send (see _handle), not the client's fault: nothing
            # was recorded, so never 200.
            telemetry.count("PixelErrors")
            telemetry.failure("hit failed", error)
            return responses.with_cors(responses.unavailable(), allow_origin)
        finally:
            try:
                telemetry.publish()
            except Exception as error:  # bookkeeping: never changes the answer (see _handle)
                with suppress(Exception):
                    telemetry.failure("metrics not published", error)

    def _handle(
        self,
        params: Mapping[str, Sequence[str]],
        headers: Mapping[str, str],
        allow_origin: str | None,
    ) -> Response:
        try:
            hit = self._admit(params, headers)
        except HitRefusedError as refusal:
            telemetry.count("HitsRefused")
            telemetry.count_by_reason("HitsRefusedByReason", refusal.code)
            # The rule and the parameter's kind, never its name: see parameter_kind.
            kind = parameter_kind(refusal.parameter, self._gate.token_parameter)
            telemetry.logger.info(
                "hit refused", extra={"reason": refusal.code, "parameter_kind": kind}
            )
            return responses.with_cors(responses.refused(str(refusal)), allow_origin)
        if hit.unknown_parameters:
            telemetry.count("UnknownParameters", len(hit.unknown_parameters))
        if hit.dropped_parameters:
            telemetry.count("UndefinedAttributesDropped", len(hit.dropped_parameters))
        # The answer is built before the send: once the event is on the queue, nothing but
        # bookkeeping runs, and bookkeeping that fails is logged, never answered.
        recorded = responses.with_cors(responses.pixel(), allow_origin)
        try:
            self._queue.send(hit.event)
        except QueueUnavailableError as error:
            telemetry.count("EnqueueFailures")
            if error.may_have_landed:
                telemetry.count("EnqueueOutcomeUnknown")
            telemetry.logger.error(
                "hit not enqueued",
                extra={"error": str(error), "may_have_landed": error.may_have_landed},
            )
            return responses.with_cors(responses.unavailable(error.may_have_landed), allow_origin)
        try:
            telemetry.count("HitsAccepted")
        except Exception as error:
            with suppress(Exception):
                telemetry.failure("hit recorded; counting it failed", error)
        return recorded

    def _admit(
        self, params: Mapping[str, Sequence[str]], headers: Mapping[str, str]
    ) -> AcceptedHit:
        """The hit, if every filter and rule lets it through; else HitRefusedError."""
        self._gate.check_request(headers)
        return self._gate.admit(params, self._clock())
