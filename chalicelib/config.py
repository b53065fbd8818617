"""Settings: the aggregate of every feature's settings, read once per container.

Each feature owns its settings type and parses its own variables with `chalicelib.env`
(HitPolicy in hits, SigningSettings in signing, OriginPolicy in origins, BotSettings in bots,
DedupeSettings in dedupe, each destination's Settings in its module). This module imports
them, never the reverse, so dependencies point one way. The optional gates' modules (signed
hits, page origins) are imported only when their variables are set: the pixel's cold start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Final

from chalicelib.bots import BotSettings
from chalicelib.destinations import registry
from chalicelib.env import ConfigError, Reader
from chalicelib.hits import HitPolicy

if TYPE_CHECKING:
    from chalicelib.origins import OriginPolicy
    from chalicelib.signing.settings import SigningSettings


# The consumer mapping's MaximumConcurrency when MAX_CONCURRENCY is unset, on both deploy
# paths: 5 invocations of BATCH_SIZE events (100: about 1 s each with one destination)
# deliver some 500 events/s, the prod stage's API throttle, and leave the rest of the
# account's concurrency to the pixel. Lambda's poller holds messages back above it (it does
# not throttle), so a replay of the dead-letter queue cannot starve the pixel.
DEFAULT_MAX_CONCURRENCY: Final = 5


@dataclass(frozen=True)
class QueueWiring:
    """What the `@app.on_sqs_message` decorator needs when `app.py` is imported."""

    events_queue: str
    batch_size: int
    batching_window_seconds: int
    maximum_concurrency: int  # the mapping's ScalingConfig.MaximumConcurrency

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> QueueWiring:
        reader = Reader(environ)
        batch_size = reader.integer("BATCH_SIZE", default=100, low=1, high=10_000)
        window = reader.integer("BATCH_WINDOW_SECONDS", default=1, low=0, high=300)
        if batch_size > 10 and window < 1:
            # Lambda's own rule for SQS event sources: a batch over 10 needs a window.
            raise ConfigError("BATCH_WINDOW_SECONDS", "must be at least 1 when BATCH_SIZE > 10")
        concurrency = reader.integer(
            "MAX_CONCURRENCY", default=DEFAULT_MAX_CONCURRENCY, low=2, high=1000
        )
        return cls(
            events_queue=reader.queue_name("EVENTS_QUEUE"),
            batch_size=batch_size,
            batching_window_seconds=window,
            maximum_concurrency=concurrency,
        )


@dataclass(frozen=True)
class Settings:
    """Everything both functions read from the stage configuration."""

    wiring: QueueWiring
    dead_letter_queue: str
    destinations: tuple[str, ...]  # each one's own settings: registry.configure
    hit_policy: HitPolicy
    report_batch_item_failures: bool
    enqueue_attempts: int
    signing: SigningSettings | None  # None: no signing variable set, no signed hits
    origins: OriginPolicy | None  # None: ALLOWED_PAGE_ORIGINS unset, every page may send
    bots: BotSettings

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> Settings:
        reader = Reader(environ)
        return cls(
            wiring=QueueWiring.from_env(environ),
            dead_letter_queue=reader.queue_name("DEAD_LETTER_QUEUE"),
            destinations=registry.parse_names(
                environ.get("DESTINATIONS", registry.DEFAULT_DESTINATIONS)
            ),
            hit_policy=HitPolicy.from_env(environ),
            report_batch_item_failures=reader.boolean("REPORT_BATCH_ITEM_FAILURES", default=False),
            enqueue_attempts=reader.integer("ENQUEUE_ATTEMPTS", default=3, low=1, high=3),
            signing=_signing(environ),
            origins=_origins(environ),
            bots=BotSettings.from_env(environ),
        )


def _signing(environ: Mapping[str, str]) -> SigningSettings | None:
    """The signed-hit settings, their modules loaded only when one of their variables (all
    TOKEN_* and SIGNED_*, and REQUIRE_SIGNED_HITS) is set: most stages have none."""
    if not any(
        value.strip()
        for name, value in environ.items()
        if name.startswith(("TOKEN_", "SIGNED_")) or name == "REQUIRE_SIGNED_HITS"
    ):
        return None
    from chalicelib.signing.settings import SigningSettings

    return SigningSettings.from_env(environ)


def _origins(environ: Mapping[str, str]) -> OriginPolicy | None:
    """The page-origin allowlist, its module loaded only when one is configured."""
    if not environ.get("ALLOWED_PAGE_ORIGINS", "").strip():
        # Off; a wrong PAGE_ORIGIN_REQUIRED still fails here, as it would with a list.
        Reader(environ).boolean("PAGE_ORIGIN_REQUIRED", default=False)
        return None
    from chalicelib.origins import OriginPolicy

    return OriginPolicy.from_env(environ)
