"""Wiring: settings, AWS clients and services, built on first use and kept per container.

Nothing here runs at import (no AWS call, no environment read), so `app.py` imports fast and
tests can point every client at local servers through `AWS_ENDPOINT_URL_*` before first use.
"""

from __future__ import annotations

import os
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config

from chalicelib.config import Settings
from chalicelib.delivery import BatchDelivery
from chalicelib.destinations.pinpoint import PinpointDestination
from chalicelib.pixel import PixelService
from chalicelib.queue import BatchQueue, DeadLetterQueue, EventQueue

if TYPE_CHECKING:
    from mypy_boto3_pinpoint import PinpointClient
    from mypy_boto3_sqs import SQSClient


@cache
def settings() -> Settings:
    return Settings.from_env(os.environ)


@cache
def _pixel_sqs() -> SQSClient:
    # The browser is waiting: short timeouts, and the attempts from ENQUEUE_ATTEMPTS.
    config = Config(
        connect_timeout=0.5,
        read_timeout=1.5,
        retries={"mode": "standard", "total_max_attempts": settings().enqueue_attempts},
    )
    return boto3.client("sqs", config=config)


@cache
def _consumer_sqs() -> SQSClient:
    return boto3.client("sqs", config=Config(retries={"mode": "standard"}))


@cache
def _pinpoint() -> PinpointClient:
    config = Config(
        connect_timeout=2,
        read_timeout=settings().delivery_timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": 3},
    )
    return boto3.client("pinpoint", config=config)


@cache
def pixel_service() -> PixelService:
    current = settings()
    return PixelService(current.hit_policy, EventQueue(_pixel_sqs(), current.wiring.events_queue))


@cache
def batch_delivery() -> BatchDelivery:
    current = settings()
    # The longest one PutEvents call can take (3 attempts, connect and read timeouts,
    # backoff), plus time to settle the batch: no call starts with less Lambda time left.
    call_budget_ms = (3 * (2 + current.delivery_timeout_seconds) + 3 + 5) * 1000
    return BatchDelivery(
        destination=PinpointDestination(
            _pinpoint(), current.pinpoint_application_id, call_budget_ms
        ),
        dead_letters=DeadLetterQueue(_consumer_sqs(), current.dead_letter_queue),
        events_queue=BatchQueue(_consumer_sqs(), current.wiring.events_queue),
        report_batch_item_failures=current.report_batch_item_failures,
    )


def reset() -> None:
    """Forget everything built so far (tests change the environment between cases)."""
    for cached in (settings, _pixel_sqs, _consumer_sqs, _pinpoint, pixel_service, batch_delivery):
        cached.cache_clear()
