"""Wiring: settings, AWS clients and services, built on first use and kept per container.

Nothing here runs at import (no AWS call, no environment read), so `app.py` imports fast and
tests can point every client at local servers through `AWS_ENDPOINT_URL_*` before first use.
The composition root: it alone wires the pixel and the consumer, so it alone imports both
(the consumer's modules inside `batch_delivery`, which the pixel never calls), and each
optional gate (bots, signed hits) is imported only when configured.
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from concurrent.futures import ThreadPoolExecutor
from functools import cache
from typing import TYPE_CHECKING

import boto3
from botocore.config import Config
from botocore.exceptions import NoRegionError

from chalicelib import telemetry
from chalicelib.config import Settings
from chalicelib.destinations import registry
from chalicelib.pixel import Gate, PixelService
from chalicelib.queue import NO_REGION, EventQueue, EventSink, UnreachableQueue

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_sqs import SQSClient

    from chalicelib.beacon import BeaconService
    from chalicelib.consent import ConsentSettings
    from chalicelib.dedupe import DedupeSettings
    from chalicelib.delivery import BatchDelivery
    from chalicelib.destinations.base import DestinationPlugin
    from chalicelib.erasure import ErasureSettings


@cache
def settings() -> Settings:
    honour_aws_region(os.environ)
    return Settings.from_env(os.environ)


def honour_aws_region(environ: MutableMapping[str, str]) -> None:
    """The region as the deploy tools read it (devtools.process.aws_region): AWS_REGION,
    then AWS_DEFAULT_REGION, then the profile's. boto3 reads AWS_DEFAULT_REGION only, so
    AWS_REGION is copied there: every client of this process (SQS, the destinations', the
    signing keys' through Powertools) then uses it. Lambda sets both to the same value;
    this matters for `chalice local` in a shell that sets AWS_REGION only."""
    region = environ.get("AWS_REGION", "").strip()
    if region:
        environ["AWS_DEFAULT_REGION"] = region


@cache
def destinations() -> tuple[DestinationPlugin[object], ...]:
    """The configured destinations' plug-ins with their own settings (importing only
    those modules)."""
    return registry.configure(settings().destinations, os.environ)


def check_configuration() -> Settings:
    """Every setting, parsed now. Chalice imports app.py with the stage's environment to
    deploy, package or run locally: a wrong value stops it there, naming the variable. In
    Lambda each function parses only what it uses, on first use, to keep cold starts short."""
    current = settings()
    if not os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        destinations()
        dedupe_settings()
        consent_settings()
        erasure_settings()
    return current


@cache
def dedupe_settings() -> DedupeSettings:
    from chalicelib.dedupe import DedupeSettings  # the consumer's

    return DedupeSettings.from_env(os.environ)


@cache
def consent_settings() -> ConsentSettings:
    from chalicelib.consent import ConsentSettings  # the consumer's

    return ConsentSettings.from_env(os.environ)


@cache
def erasure_settings() -> ErasureSettings:
    from chalicelib.erasure import ErasureSettings  # the consumer's

    return ErasureSettings.from_env(os.environ)


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
    # Bounded timeouts and attempts: settling a batch must finish before Lambda's deadline,
    # and the consumer keeps a reserve made of this client's worst case (settlement.SqsCallLimits).
    from chalicelib.settlement import CONSUMER_SQS

    config: Config = CONSUMER_SQS.botocore_config()
    return boto3.client("sqs", config=config)


@cache
def _consumer_pool() -> ThreadPoolExecutor:
    """The consumer's one pool of threads, for the calls a batch makes at once: SQS batch
    calls while settling (a batch of 1,000 needs 100 deletes), dead letters sent while
    copies are requeued, and a destination's concurrent calls (Customer Profiles' write
    threads). Threads start when first needed; `reset` shuts the pool down."""
    from chalicelib.settlement import CONSUMER_SQS

    return ThreadPoolExecutor(CONSUMER_SQS.workers, thread_name_prefix="consumer")


@cache
def _dynamodb() -> DynamoDBClient:
    # The dedupe store's and the erasure list's, both read before a batch is delivered, so
    # short: a slow dedupe store is skipped (events sent anyway), a slow erasure list retries
    # the batch; neither is waited for at length.
    config = Config(
        connect_timeout=1,
        read_timeout=2,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    return boto3.client("dynamodb", config=config)


@cache
def pixel_service() -> PixelService:
    return PixelService(_gate(), _event_queue())


@cache
def beacon_service() -> BeaconService:
    """POST /events: the pixel's gate and queue, many hits a request."""
    from chalicelib.beacon import BeaconService

    return BeaconService(_gate(), _event_queue())


@cache
def _event_queue() -> EventSink:
    try:
        client = _pixel_sqs()
    except NoRegionError:
        # Not in Lambda (it sets the region): plain `chalice local` in a fresh shell. Every
        # hit is answered 503 "not recorded", its log line naming the fix; never a 500.
        telemetry.logger.error("SQS client not created", extra={"error": NO_REGION})
        return UnreachableQueue(NO_REGION)
    return EventQueue(client, settings().wiring.events_queue)


@cache
def _gate() -> Gate:
    current = settings()
    bots = verifier = None
    if current.bots.enabled:
        from chalicelib.bots import BotFilter

        bots = BotFilter(enabled=True)
    if current.signing is not None and current.signing.enabled:
        from chalicelib.signing.verify import TokenVerifier

        verifier = TokenVerifier(current.signing)
    return Gate(
        policy=current.hit_policy,
        signing=current.signing,
        bots=bots,
        origins=current.origins,
        verifier=verifier,
    )


@cache
def batch_delivery() -> BatchDelivery:
    # Imported here: the pixel function never needs the consumer's modules.
    from chalicelib.consent import with_consent
    from chalicelib.dedupe import Deduplicated, DynamoDeliveryStore, RecentDeliveries
    from chalicelib.delivery import BatchDelivery
    from chalicelib.erasure import SuppressionList
    from chalicelib.settlement import CONSUMER_SQS, BatchQueue, DeadLetterQueue

    current = settings()
    pool = _consumer_pool()
    dedupe = dedupe_settings()
    store = (
        DynamoDeliveryStore(_dynamodb(), dedupe.table, dedupe.ttl_seconds) if dedupe.table else None
    )
    # Each destination is sent an event it recorded once: copies are answered from one
    # memory per container (keys name the destination) and, if configured, the table.
    memory = RecentDeliveries(dedupe.memory_size)
    # An event without the consent a destination requires (CONSENT_REQUIRED) is not sent there.
    consent = consent_settings()
    # Events of visitors forgotten with `make ops ARGS="forget ..."` go nowhere; without
    # ERASURE_TABLE no look-up is made.
    erasure = erasure_settings()
    suppression = SuppressionList(_dynamodb(), erasure.table) if erasure.table is not None else None
    return BatchDelivery(
        destinations=[
            with_consent(Deduplicated(plugin.create(pool), memory, store), consent)
            for plugin in destinations()
        ],
        dead_letters=DeadLetterQueue(_consumer_sqs(), current.dead_letter_queue, pool),
        events_queue=BatchQueue(_consumer_sqs(), current.wiring.events_queue, pool),
        report_batch_item_failures=current.report_batch_item_failures,
        sqs_limits=CONSUMER_SQS,
        pool=pool,
        suppression=suppression,
    )


def reset() -> None:
    """Forget everything built so far (tests change the environment between cases), and
    stop the consumer's threads."""
    if _consumer_pool.cache_info().currsize:
        _consumer_pool().shutdown(wait=False)
    for cached in (
        settings,
        destinations,
        dedupe_settings,
        consent_settings,
        erasure_settings,
        _dynamodb,
        _pixel_sqs,
        _consumer_sqs,
        _consumer_pool,
        pixel_service,
        beacon_service,
        _event_queue,
        _gate,
        batch_delivery,
    ):
        cached.cache_clear()
