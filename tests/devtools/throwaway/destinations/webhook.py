"""A throwaway destination that is no AWS service: each batch POSTed as JSON lines to an
HTTPS endpoint, with a secret as its bearer token."""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Final
from urllib.parse import urlsplit

from chalicelib.destinations.base import (
    Destination,
    DestinationPlugin,
    Setting,
    Statement,
    record_line,
    verdict_for_status,
)
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict

URL: Final = Setting("WEBHOOK_URL", "the HTTPS endpoint each batch is POSTed to")
SECRET: Final = Setting("WEBHOOK_SECRET", "the bearer token the endpoint expects")


@dataclass(frozen=True)
class Settings:
    url: str
    secret: str = ""

    def __repr__(self) -> str:  # the secret never reaches a log
        return f"Settings(url={self.url!r})"


class WebhookDestination(Destination):
    name = "webhook"

    def __init__(self, settings: Settings, timeout_seconds: float = 10) -> None:
        self._settings = settings
        self._timeout = timeout_seconds

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        if not events:
            return []
        request = urllib.request.Request(
            self._settings.url,
            data=b"".join(record_line(event) for event in events),
            headers={
                "Authorization": f"Bearer {self._settings.secret}",
                "Content-Type": "application/x-ndjson",
            },
            method="POST",
        )
        try:
            with urllib.request.urlopen(request, timeout=self._timeout) as answer:
                status = answer.status
        except urllib.error.HTTPError as error:
            status = error.code
        except OSError as error:
            return [Outcome(Verdict.RETRY, f"webhook unreachable: {type(error).__name__}")] * len(
                events
            )
        verdict = verdict_for_status(status)
        if verdict is Verdict.DELIVERED:
            return [DELIVERED] * len(events)
        return [Outcome(verdict, f"webhook answered {status}")] * len(events)


class Webhook(DestinationPlugin[Settings]):
    name = "webhook"
    service = None  # not an AWS service: no region to check, no IAM
    variables = (URL, SECRET)
    double = "tests.devtools.throwaway.webhook_double"
    calls_per_1000_events = 2  # one request a batch, batches of 500

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        url = URL.read(environ)
        parts = urlsplit(url)
        if parts.scheme != "https" and parts.hostname != "127.0.0.1":
            raise ConfigError(URL.variable, "must be an https:// URL (http only on 127.0.0.1)")
        return Settings(url, SECRET.read(environ))

    def create(self, pool: Executor | None = None) -> WebhookDestination:
        return WebhookDestination(self.settings)

    def iam_statements(self) -> list[Statement]:
        return []


PLUGIN: Final = Webhook
