"""Structured logs and CloudWatch metrics, through Powertools for AWS Lambda.

Logs are one JSON object per line; metrics use the Embedded Metric Format, so CloudWatch
extracts them from the log stream without a PutMetricData call on the hot path. Nothing here
logs endpoint ids, user ids or attribute values: only counts, reasons and parameter kinds.

Every metric carries the dimensions `service` and, when the deploy sets PIXEL_RELAY_STAGE
(both paths do: .chalice/config.json per stage, and the CloudFormation template), `stage`,
so one stage's alarms never count another's. The alarms use exactly these dimensions.
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Mapping

from aws_lambda_powertools import Logger, Metrics, single_metric
from aws_lambda_powertools.metrics import MetricUnit

SERVICE = "pixel-relay"
NAMESPACE = "PixelRelay"

# Chalice names its own logger after the app ("pixel-relay") and sets it to ERROR unless
# debug is on; sharing that name silently dropped every INFO line. A logger of our own,
# whose records still say service "pixel-relay".
logger = Logger(service="pixel_relay.pipeline")
logger.append_keys(service=SERVICE)
STAGE_VARIABLE = "PIXEL_RELAY_STAGE"


def default_dimensions(environ: Mapping[str, str]) -> dict[str, str]:
    """The dimensions besides `service` on every metric: the stage, when one is set."""
    stage = environ.get(STAGE_VARIABLE, "").strip()
    return {"stage": stage} if stage else {}


DIMENSIONS = default_dimensions(os.environ)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
if DIMENSIONS:
    metrics.set_default_dimensions(**DIMENSIONS)


def failure(message: str, error: BaseException, **extra: object) -> None:
    """An unexpected error at ERROR level: its type and the frames it was raised through,
    never its message. An exception's text may quote what it met (an endpoint id, an
    attribute value: `KeyError('alice@example.com')`), and the logs promise none
    (docs/operations.md#logs); the frames show the code, not the data."""
    frames = "".join(traceback.format_tb(error.__traceback__))
    logger.error(
        message,
        extra={**extra, "error": type(error).__name__, "traceback": frames},
        stacklevel=3,  # the caller's location (Powertools adds one level of its own)
    )


def count(name: str, value: int = 1) -> None:
    """Add to a counter published when the invocation ends (see `publish`)."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_by_reason(name: str, reason: str, value: int = 1) -> None:
    """A counter with a `reason` dimension, published at once in its own EMF document."""
    _count_at_once(name, "reason", reason, value)


def publish() -> None:
    """Flush the invocation's counters; called at the end of every handler."""
    metrics.flush_metrics(raise_on_empty_metrics=False)


def count_for_destination(name: str, destination: str, value: int = 1) -> None:
    """A counter with a `destination` dimension, published at once in its own EMF document
    (`DuplicatesSkipped`, `DedupeStoreReadFailures`, `DedupeStoreWriteFailures`)."""
    if value:
        _count_at_once(name, "destination", destination, value)


def _count_at_once(name: str, dimension: str, dimension_value: str, value: int) -> None:
    """A counter with one dimension of its own besides `service`, published at once in its
    own EMF document."""
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=NAMESPACE,
        default_dimensions=DIMENSIONS,
    ) as metric:
        metric.add_dimension(name="service", value=SERVICE)
        metric.add_dimension(name=dimension, value=dimension_value)
