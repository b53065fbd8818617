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

from chalicelib.bots import BotFilter
from chalicelib.config import Settings
from chalicelib.delivery import BatchDelivery
from chalicelib.destinations import registry
from chalicelib.pixel import Gate, PixelService
from chalicelib.queue import BatchQueue, DeadLetterQueue, EventQueue
from chalicelib.signing import TokenVerifier

if TYPE_CHECKING:
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
def pixel_service() -> PixelService:
    current = settings()
    gate = Gate(
        policy=current.hit_policy,
        signing=current.signing,
        bots=BotFilter(enabled=True) if current.bot_filter else None,
        origins=current.origins,
        verifier=TokenVerifier(current.signing) if current.signing.enabled else None,
    )
    return PixelService(gate, EventQueue(_pixel_sqs(), current.wiring.events_queue))


@cache
def batch_delivery() -> BatchDelivery:
    current = settings()
    return BatchDelivery(
        destinations=[
            registry.create(name, current.destination_settings[name])
            for name in current.destinations
        ],
        dead_letters=DeadLetterQueue(_consumer_sqs(), current.dead_letter_queue),
        events_queue=BatchQueue(_consumer_sqs(), current.wiring.events_queue),
        report_batch_item_failures=current.report_batch_item_failures,
    )


def reset() -> None:
    """Forget everything built so far (tests change the environment between cases)."""
    for cached in (settings, _pixel_sqs, _consumer_sqs, pixel_service, batch_delivery):
        cached.cache_clear()
