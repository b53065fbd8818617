"""Per-stage deploy settings from deploy/stages.json: throttling, log retention, alarm
thresholds, the WAF rate limit.

They live beside, not inside, .chalice/config.json: Chalice has no place for them, and the
Lambda functions never read them. A wrong value fails here, naming the stage and the key,
before anything is packaged or deployed.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Final

from devtools.paths import ROOT, STAGES_FILE

SETTINGS_FILE: Final = STAGES_FILE
# The only values CloudWatch Logs accepts for RetentionInDays.
LOG_RETENTION_DAYS: Final = frozenset(
    {1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557}
    | {2922, 3288, 3653}
)


class DeploySettingsError(ValueError):
    """A deploy/stages.json value pixel-relay cannot use; the message names stage and key."""


@dataclass(frozen=True)
class DeploySettings:
    """What the CloudFormation template needs beyond the Chalice stage configuration."""

    throttling_rate_limit: float
    throttling_burst_limit: int
    log_retention_days: int
    dead_letter_alarm_threshold: int
    consumer_errors_alarm_threshold: int
    consumer_errors_alarm_periods: int
    queue_age_alarm_seconds: int
    enqueue_failures_alarm_threshold: int
    waf_rate_limit_per_5_minutes: int
    api_5xx_alarm_threshold: int
    dead_letter_age_alarm_seconds: int
    retried_events_alarm_threshold: int

    @classmethod
    def for_stage(cls, stage: str, root: Path = ROOT) -> DeploySettings:
        document: dict[str, Any] = json.loads((root / SETTINGS_FILE).read_text())
        stages = document.get("stages", {})
        if stage not in stages:
            known = ", ".join(sorted(stages)) or "none"
            raise DeploySettingsError(f"stage {stage!r} is not in {SETTINGS_FILE} ({known})")
        values = {**document.get("defaults", {}), **stages[stage]}
        names = {field.name for field in fields(cls)}
        unknown = sorted(set(values) - names)
        if unknown:
            raise DeploySettingsError(f"{SETTINGS_FILE} stage {stage}: unknown keys {unknown}")
        missing = sorted(names - set(values))
        if missing:
            raise DeploySettingsError(f"{SETTINGS_FILE} stage {stage}: missing keys {missing}")
        settings = cls(**values)
        settings._check(stage)
        return settings

    def _check(self, stage: str) -> None:
        def fail(key: str, rule: str) -> DeploySettingsError:
            return DeploySettingsError(f"{SETTINGS_FILE} stage {stage}: {key} {rule}")

        if not 0 < self.throttling_rate_limit <= 10_000:
            raise fail("throttling_rate_limit", "must be between 0 and 10000 requests a second")
        if not 0 < self.throttling_burst_limit <= 5_000:
            # API Gateway's account-level burst quota is 5,000 by default.
            raise fail("throttling_burst_limit", "must be between 1 and 5000")
        if self.log_retention_days not in LOG_RETENTION_DAYS:
            allowed = ", ".join(str(days) for days in sorted(LOG_RETENTION_DAYS))
            raise fail("log_retention_days", f"must be one of {allowed}")
        for key in (
            "dead_letter_alarm_threshold",
            "consumer_errors_alarm_threshold",
            "consumer_errors_alarm_periods",
            "enqueue_failures_alarm_threshold",
            "api_5xx_alarm_threshold",
            "retried_events_alarm_threshold",
        ):
            value = getattr(self, key)
            if not isinstance(value, int) or value < 1:
                raise fail(key, "must be a whole number of at least 1")
        if not 60 <= self.queue_age_alarm_seconds <= 1_209_600:
            raise fail("queue_age_alarm_seconds", "must be between 60 and 1209600")
        if not 60 <= self.dead_letter_age_alarm_seconds < 1_209_600:
            # Below the dead-letter queue's 14 days, or the alarm fires as the events expire.
            raise fail("dead_letter_age_alarm_seconds", "must be between 60 and 1209599")
        if not 10 <= self.waf_rate_limit_per_5_minutes <= 2_000_000_000:
            # AWS WAF's own bounds for a rate-based rule's Limit.
            raise fail("waf_rate_limit_per_5_minutes", "must be between 10 and 2000000000")
