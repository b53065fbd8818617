"""The pixel: one hit in, one message on the queue, and the GIF only once it is there."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime

from chalice.app import Response

from chalicelib import responses, telemetry
from chalicelib.config import HitPolicy
from chalicelib.hits import HitRefusedError, parse_hit
from chalicelib.queue import EventQueue, QueueUnavailableError


def utc_now() -> datetime:
    return datetime.now(UTC)


class PixelService:
    """Validates a hit and enqueues it. Answers 200 only for an event SQS has taken."""

    def __init__(
        self, policy: HitPolicy, queue: EventQueue, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._policy = policy
        self._queue = queue
        self._clock = clock

    def handle(self, params: Mapping[str, Sequence[str]]) -> Response:
        try:
            return self._handle(params)
        except Exception:
            # A defect, not the client's fault: the event was not recorded, so never 200.
            telemetry.count("PixelErrors")
            telemetry.logger.exception("hit failed")
            return responses.unavailable()
        finally:
            telemetry.publish()

    def _handle(self, params: Mapping[str, Sequence[str]]) -> Response:
        try:
            hit = parse_hit(params, self._policy, self._clock())
        except HitRefusedError as refusal:
            telemetry.count("HitsRefused")
            telemetry.count_by_reason("HitsRefusedByReason", refusal.code)
            telemetry.logger.info(
                "hit refused",
                extra={"reason": refusal.code, "parameter": refusal.parameter[:64]},
            )
            return responses.refused(str(refusal))
        if hit.unknown_parameters:
            telemetry.count("UnknownParameters", len(hit.unknown_parameters))
        try:
            self._queue.send(hit.event)
        except QueueUnavailableError as error:
            telemetry.count("EnqueueFailures")
            telemetry.logger.error("hit not enqueued", extra={"error": str(error)})
            return responses.unavailable()
        telemetry.count("HitsAccepted")
        return responses.pixel()
