"""The soak's pipeline: the real pixel and consumer, in one process, over loopback servers.

- the pixel: the Chalice app called with API Gateway proxy events, as Lambda calls it;
- SQS: moto's server behind `tests.fault_proxy.FaultProxy`, which delays SendMessage
  answers past the pixel's 1.5 s read timeout in the slow-SQS phase and drops some
  DeleteMessageBatch / SendMessageBatch answers of the consumer (carried out, unanswered);
- the consumer: `app.deliver` fed by `LocalEventSourceMapping` with the
  stage's batch size and Lambda's default mapping (no ReportBatchItemFailures);
- the destinations: the local stack's dry run (`DryRun`): the Pinpoint and
  Customer Profiles stand-ins with content-keyed faults, and every other destination on moto,
  read back (`tests.soak.plan.DESTINATIONS`).

One thread drives everything, hits and polls interleaved, so a seed replays the same run
(only the slow phase's timing can move a message between batches).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import pytest

from chalicelib.destinations import registry
from chalicelib.events import Event
from devtools.api_gateway import pixel_event
from devtools.localstack.dry_run import DryRun
from devtools.localstack.event_source import LocalEventSourceMapping
from devtools.queue_spec import MAX_RECEIVE_COUNT, consumer_timeout_seconds
from tests.fault_proxy import FaultProxy
from tests.soak.accounting import Hit, Letter, Sightings, soak_id_of_body
from tests.soak.plan import DESTINATIONS, Plan

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

APPLICATION_ID = "0123456789abcdef0123456789abcdef"
USER_AGENT = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/156.0.0.0 Safari/537.36"
)
IMAGE_ACCEPT = "image/jxl,image/avif,image/webp,image/apng,image/svg+xml,image/*,*/*;q=0.8"
PIXEL_READ_TIMEOUT = 1.5  # chalicelib.runtime._pixel_sqs
SLOW_ANSWER_SECONDS = PIXEL_READ_TIMEOUT + 0.3
HITS_BETWEEN_POLLS = 40
DRAIN_SECONDS = 120.0
BATCH_WIDE_SPACING = 6  # polls; above MAX_RECEIVE_COUNT
BATCH_WIDE_STATUSES = frozenset({403, 404, 429})  # customer_profiles stops the batch's calls
PERMANENT_STATUSES = frozenset({400})  # a rejection, not a passing failure


class LambdaContext:
    """What `deliver` reads of Lambda's context: the time left before the timeout."""

    def __init__(self, timeout_seconds: int) -> None:
        self._deadline = time.monotonic() + timeout_seconds

    def get_remaining_time_in_millis(self) -> int:
        return max(0, int((self._deadline - time.monotonic()) * 1000))


@dataclass
class Soak:
    plan: Plan
    sqs: SQSClient  # straight to moto: the mapping's own calls are Lambda's, not faulted
    events_url: str
    dead_letter_url: str
    proxy: FaultProxy
    dry_run: DryRun
    consumer_timeout: int
    statuses: dict[str, int] = field(default_factory=dict)
    copies: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    sightings: defaultdict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))
    batch_errors: Counter[str] = field(default_factory=Counter)
    polls: int = 0
    last_batch_wide_poll: int = -BATCH_WIDE_SPACING
    seconds: dict[str, float] = field(default_factory=dict)

    # Faults at the destinations ----------------------------------------------------------

    def _batch_wide_allowed(self) -> bool:
        """A fault that fails every event of a request (or, at Customer Profiles, every call
        after it) waits until BATCH_WIDE_SPACING polls passed since the last one: otherwise
        the same bystanders could meet one in every receive and be redriven after
        maxReceiveCount — the designed end of an outage, but not what this soak measures."""
        if self.polls - self.last_batch_wide_poll < BATCH_WIDE_SPACING:
            return False
        self.last_batch_wide_poll = self.polls
        return True

    def _next_fault(self, destination: str, soak_id: str | None) -> int | None:
        """The planned status for this sighting of a hit at a destination, if any."""
        if soak_id is None:
            return None
        statuses = self.plan.faults.per_event.get(destination, {}).get(soak_id)
        if not statuses:
            return None
        seen = self.sightings[(destination, soak_id)]
        if seen >= len(statuses):
            # A rejection is about the event's content: every copy of the hit (the pixel's
            # retries make them) meets it again, as at a real destination.
            return statuses[-1] if statuses[-1] in PERMANENT_STATUSES else None
        batch_wide = destination == "customer-profiles" and statuses[seen] in BATCH_WIDE_STATUSES
        if batch_wide and not self._batch_wide_allowed():
            return None  # deferred: accepted this time
        self.sightings[(destination, soak_id)] += 1
        return statuses[seen]

    def pinpoint_request_fault(self, body: dict[str, Any]) -> int | None:
        for item in body.get("BatchItem", {}).values():
            for event in item.get("Events", {}).values():
                soak_id = event.get("Attributes", {}).get("soak")
                statuses = self.plan.faults.per_request.get(soak_id)
                if not statuses:
                    continue
                key = ("pinpoint-request", soak_id)
                seen = self.sightings[key]
                if seen < len(statuses) and self._batch_wide_allowed():
                    self.sightings[key] += 1
                    return statuses[seen]
        return None

    def pinpoint_event_fault(
        self, endpoint_id: str, event: dict[str, Any]
    ) -> tuple[int, str] | None:
        status = self._next_fault("pinpoint", event.get("Attributes", {}).get("soak"))
        return None if status is None else (status, f"soak fault {status}")

    def _profiles_next_is_batch_wide(self, soak_id: str | None) -> bool:
        statuses = self.plan.faults.per_event.get("customer-profiles", {}).get(soak_id or "")
        seen = self.sightings.get(("customer-profiles", soak_id or ""), 0)
        if statuses is None or seen >= len(statuses):
            return False
        return statuses[seen] in BATCH_WIDE_STATUSES

    def profiles_request_fault(self, operation: str, body: dict[str, Any]) -> int | None:
        """A batch-wide status (403) fails the whole BatchPutProfileObject that carries the
        hit; other planned statuses are that item's own (`profiles_item_fault`)."""
        if operation != "BatchPutProfileObject":
            return None
        for item in body.get("Items", []):
            try:
                soak_id = json.loads(item.get("Object", "{}")).get("attributes", {}).get("soak")
            except (ValueError, AttributeError):
                continue
            if self._profiles_next_is_batch_wide(soak_id):
                status = self._next_fault("customer-profiles", soak_id)
                if status is not None:
                    return status
        return None

    def profiles_item_fault(self, obj: dict[str, Any]) -> tuple[int, str] | None:
        soak_id = obj.get("attributes", {}).get("soak")
        if self._profiles_next_is_batch_wide(soak_id):
            return None  # met by the request it travels in
        status = self._next_fault("customer-profiles", soak_id)
        return None if status is None else (status, f"soak fault {status}")

    # Driving ------------------------------------------------------------------------------

    def hit(self, query: str) -> int:
        from app import app

        event = pixel_event(query, {"User-Agent": USER_AGENT, "Accept": IMAGE_ACCEPT})
        answer = app(event, None)
        status = int(answer["statusCode"])
        if status == 200:
            body = answer["body"]
            raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
            assert raw.startswith(b"GIF8"), "a 200 must be the GIF"
        return status

    def send_poison(self, soak_id: str, name: str, value: object) -> None:
        valid = Event(
            event_id=str(uuid.uuid4()),
            event_type="purchase",
            endpoint_id="ep-poison",
            timestamp="2026-11-30T10:00:00.000Z",
            received_at="2026-11-30T10:00:00.000Z",
            attributes={"soak": soak_id},
        )
        document: dict[str, Any] = json.loads(valid.to_message())
        document[name] = {"soak": soak_id, **value} if name == "attributes" else value  # type: ignore[dict-item]
        self.sqs.send_message(QueueUrl=self.events_url, MessageBody=json.dumps(document))

    def handler(self, event: dict[str, Any]) -> Any:
        from app import deliver

        for record in event["Records"]:
            soak_id, destinations = soak_id_of_body(record["body"])
            if soak_id is not None and destinations is None:
                self.copies[soak_id].add(record["messageId"])
        return deliver(event, LambdaContext(self.consumer_timeout))

    def poll(self, mapping: LocalEventSourceMapping) -> int:
        started = time.monotonic()
        result = mapping.poll()
        self.seconds["consumer"] = self.seconds.get("consumer", 0.0) + time.monotonic() - started
        self.polls += 1
        if result.error is not None:
            self.batch_errors[result.error.split(":")[0]] += 1
        return result.received

    def run(self) -> None:
        plan = self.plan
        mapping = LocalEventSourceMapping(
            self.sqs,
            self.events_url,
            self.handler,
            batch_size=100,
            report_batch_item_failures=False,
            redeliver_at_once=True,
        )
        poison_before: dict[int, list[tuple[str, str, object]]] = defaultdict(list)
        for n, soak_id, name, value in plan.poison:
            poison_before[n].append((soak_id, name, value))
        for n, planned in enumerate(plan.hits):
            for soak_id, name, value in poison_before.get(n, []):
                self.send_poison(soak_id, name, value)
            if n in plan.faults.dropped_answers:
                action, times = plan.faults.dropped_answers[n]
                self.proxy.drop_answer(action, times)
            if planned.slow_answers:
                self.proxy.delay("SendMessage", SLOW_ANSWER_SECONDS, planned.slow_answers)
            started = time.monotonic()
            self.statuses[planned.soak_id] = self.hit(planned.query)
            self.seconds["pixel"] = self.seconds.get("pixel", 0.0) + time.monotonic() - started
            self.proxy.clear("SendMessage")  # an unused delay must not slow the next hit
            if n % HITS_BETWEEN_POLLS == HITS_BETWEEN_POLLS - 1:
                self.poll(mapping)
        self.proxy.clear()
        deadline = time.monotonic() + DRAIN_SECONDS
        empty_polls = 0
        while empty_polls < 2 and time.monotonic() < deadline:
            empty_polls = empty_polls + 1 if self.poll(mapping) == 0 else 0

    # Reading back -------------------------------------------------------------------------

    def _wait_for_dry_run(self) -> None:
        """The dry run polls read-backs every 0.5 s: wait until what it read settles."""
        previous, stable_since = -1, time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            count = len(self.dry_run.delivered())
            if count != previous:
                previous, stable_since = count, time.monotonic()
            elif time.monotonic() - stable_since > 1.5:
                return
            time.sleep(0.2)

    def _receive_all(self, url: str) -> list[MessageTypeDef]:
        found: list[MessageTypeDef] = []
        while True:
            messages = self.sqs.receive_message(
                QueueUrl=url,
                MaxNumberOfMessages=10,
                VisibilityTimeout=300,
                MessageAttributeNames=["All"],
            ).get("Messages", [])
            if not messages:
                return found
            found.extend(messages)

    def sightings_at_end(self) -> Sightings:
        self._wait_for_dry_run()
        deliveries: dict[str, Counter[str]] = {d: Counter() for d in DESTINATIONS}
        for record in self.dry_run.delivered():
            soak_id = record["event"].get("Attributes", {}).get("soak")
            if soak_id is not None:
                deliveries[record["destination"]][soak_id] += 1
        letters = []
        for message in self._receive_all(self.dead_letter_url):
            soak_id, destinations = soak_id_of_body(message["Body"])
            attributes = {
                k: v.get("StringValue") for k, v in message.get("MessageAttributes", {}).items()
            }
            letters.append(
                Letter(
                    soak_id,
                    destinations,
                    attributes.get("rejected_at_stage"),
                    attributes.get("rejection_reason"),
                )
            )
        queued = []
        for message in self._receive_all(self.events_url):
            soak_id, destinations = soak_id_of_body(message["Body"])
            if soak_id is not None:
                queued.append((soak_id, destinations))
                if destinations is None:
                    self.copies[soak_id].add(message["MessageId"])
        return Sightings(
            destinations=DESTINATIONS,
            hits=[Hit(h.soak_id, self.statuses[h.soak_id], h.meant_valid) for h in self.plan.hits],
            copies={k: len(v) for k, v in self.copies.items()},
            deliveries=deliveries,
            letters=letters,
            queued=queued,
            planned_parks=frozenset(self.plan.faults.planned_parks),
            poison={soak_id: name for _, soak_id, name, _ in self.plan.poison},
        )


@contextmanager
def soak_pipeline(
    plan: Plan, moto_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Soak]:
    """Queues, proxy, dry run and environment for one soak; everything stopped after."""
    from chalicelib import runtime

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto: one line per call
    suffix = uuid.uuid4().hex[:8]
    sqs: SQSClient = boto3.client("sqs", endpoint_url=moto_url)
    dead_letter_url = sqs.create_queue(QueueName=f"soak-dlq-{suffix}")["QueueUrl"]
    dead_letter_arn = sqs.get_queue_attributes(
        QueueUrl=dead_letter_url, AttributeNames=["QueueArn"]
    )["Attributes"]["QueueArn"]
    events_url = sqs.create_queue(
        QueueName=f"soak-events-{suffix}",
        Attributes={
            "VisibilityTimeout": "60",
            "RedrivePolicy": json.dumps(
                {"deadLetterTargetArn": dead_letter_arn, "maxReceiveCount": MAX_RECEIVE_COUNT}
            ),
        },
    )["QueueUrl"]
    environment = {
        "EVENTS_QUEUE": f"soak-events-{suffix}",
        "DEAD_LETTER_QUEUE": f"soak-dlq-{suffix}",
        "DESTINATIONS": ",".join(DESTINATIONS),
        "PINPOINT_APPLICATION_ID": APPLICATION_ID,
        # Resources of the run's own (streams, buses, domains: each setting the model
        # names), so soaks on one moto server never meet.
        **{
            setting.variable: f"soak-{suffix}"
            for name in DESTINATIONS
            for setting in registry.plugin(name).variables
            if setting.model is not None
        },
        "ALLOWED_USER_ATTRIBUTES": "plan",
        "REPORT_BATCH_ITEM_FAILURES": "false",
        "BATCH_SIZE": "100",
    }
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    dry_run = DryRun(
        DESTINATIONS,
        dict(os.environ),
        tmp_path / "dry-run.jsonl",
        lambda line: None,
        moto_url,
        "127.0.0.1",
    )
    with FaultProxy(moto_url) as proxy:
        endpoints = dry_run.start()
        try:
            for name, value in endpoints.items():
                monkeypatch.setenv(name, value)
            monkeypatch.setenv("AWS_ENDPOINT_URL_SQS", proxy.url)  # pixel and consumer
            runtime.reset()
            soak = Soak(
                plan,
                sqs,
                events_url,
                dead_letter_url,
                proxy,
                dry_run,
                consumer_timeout_seconds("dev"),
            )
            pinpoint, profiles = dry_run.standin("pinpoint"), dry_run.standin("customer-profiles")
            assert pinpoint is not None
            assert profiles is not None
            pinpoint.plan_faults(soak.pinpoint_request_fault, soak.pinpoint_event_fault)
            profiles.plan_faults(soak.profiles_request_fault, soak.profiles_item_fault)
            yield soak
        finally:
            dry_run.stop()
            runtime.reset()
