"""The pixel's side of SQS: one message per accepted event, and queues known by name.

Queue URLs are looked up by name once per container: the name is what `.chalice/config.json`
and the `@app.on_sqs_message` decorator share, the URL is what the API needs. The consumer's
queue chores (deletes, dead letters, requeued copies) are in `chalicelib.settlement`, off the
pixel's import path: the pixel function never loads them (docs/performance.md, cold start).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

from botocore.exceptions import BotoCoreError, ClientError
from botocore.exceptions import ConnectionError as BotoConnectionError

from chalicelib import telemetry
from chalicelib.events import Event

if TYPE_CHECKING:
    from concurrent.futures import Executor

    from mypy_boto3_sqs import SQSClient


class QueueUnavailableError(RuntimeError):
    """When SQS did not take a message after the client's bounded retries.

    `may_have_landed`: an attempt was sent and its answer never came (a read timeout, a
    dropped connection) or was a server error, so SQS may hold the message anyway. False
    only when every attempt certainly failed (no connection, or SQS refused it).
    """

    def __init__(self, reason: str, may_have_landed: bool = False) -> None:
        super().__init__(reason)
        self.may_have_landed = may_have_landed


class NamedQueue:
    """A queue known by name; its URL is fetched on first use and kept."""

    def __init__(self, client: SQSClient, name: str, executor: Executor | None = None) -> None:
        """`executor`: where batch calls run at once (the consumer shares one pool between
        its queues, chalicelib.settlement); without one they run one after another."""
        self._client = client
        self._name = name
        self._url: str | None = None
        self._executor = executor

    @property
    def url(self) -> str:
        if self._url is None:
            self._url = self._client.get_queue_url(QueueName=self._name)["QueueUrl"]
        return self._url


class EventQueue(NamedQueue):
    """Where the pixel puts accepted events: one message per event.

    botocore retries a `SendMessage` whose answer is late, and SQS may have taken the first
    attempt: one hit can then be two or three messages with the same event id (the consumer
    delivers it once, chalicelib/dedupe.py). Each attempt is watched to tell the pixel's
    answer whether a failed send may still have landed, and to count the successes that
    may have left a copy behind (`EnqueueRetriedAfterTimeout`).
    """

    def __init__(self, client: SQSClient, name: str) -> None:
        super().__init__(client, name)
        self._attempts = threading.local()
        client.meta.events.register(
            "needs-retry.sqs.SendMessage", self._watch_attempt, unique_id=f"pixel-relay-{id(self)}"
        )

    def send(self, event: Event) -> None:
        self._attempts.uncertain = False
        try:
            self._client.send_message(QueueUrl=self.url, MessageBody=event.to_message())
        except (BotoCoreError, ClientError) as error:
            raise QueueUnavailableError(
                type(error).__name__, may_have_landed=self._attempts.uncertain
            ) from error
        if self._attempts.uncertain:
            telemetry.count("EnqueueRetriedAfterTimeout")

    def _watch_attempt(
        self, response: Any = None, caught_exception: Exception | None = None, **_: Any
    ) -> None:
        """botocore's hook after each attempt: note one whose fate SQS never told us."""
        if caught_exception is not None:
            certain = isinstance(caught_exception, BotoConnectionError)  # never connected
        else:
            status = response[0].status_code if response else 0
            certain = status < 500
        if not certain:
            self._attempts.uncertain = True
