"""`ops dlq`: the summary an operator reads, and replays that neither lose nor duplicate a
message, also when interrupted or killed half-way. SQS is moto's server; the 100,000-message
replay runs on an in-memory queue with SQS's receive/hold/delete rules."""

from __future__ import annotations

import io
import itertools
import shutil
import tempfile
import threading
import time
from collections import Counter, deque
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chalicelib.hits import HitPolicy, parse_hit
from devtools.ops import cli as ops
from devtools.ops.dlq import Journal, Progress, Scanner, Selection, replay, summarize
from devtools.queue_spec import QueueSpec

STAGE = "dev"
SPEC = QueueSpec.for_stage(STAGE)


def event_body(event_type: str, number: int) -> str:
    hit = parse_hit(
        {"event": [event_type], "endpoint_id": [f"ep-{number}"], "event_id": [f"id-{number}"]},
        HitPolicy(),
        datetime.now(UTC),
    )
    return hit.event.to_message()


def park(sqs: Any, url: str, body: str, reason: str | None, stage: str = "pinpoint") -> None:
    """As the consumer parks a message (or, without a reason, as the redrive policy moves it)."""
    attributes = (
        {}
        if reason is None
        else {
            "rejection_reason": {"DataType": "String", "StringValue": reason},
            "rejected_at_stage": {"DataType": "String", "StringValue": stage},
            "original_message_id": {"DataType": "String", "StringValue": "m-original"},
        }
    )
    sqs.send_message(QueueUrl=url, MessageBody=body, MessageAttributes=attributes)


@pytest.fixture
def queues(sqs: Any) -> tuple[str, str]:
    dead_letter = sqs.create_queue(QueueName=SPEC.dead_letter_queue)["QueueUrl"]
    events = sqs.create_queue(QueueName=SPEC.events_queue)["QueueUrl"]
    return events, dead_letter


def fill(sqs: Any, dead_letter: str) -> list[str]:
    """12 purchase rejected by Pinpoint, 5 signup moved by redrive, 2 profile parks, 1 bad."""
    bodies = []
    for n in range(12):
        bodies.append(event_body("purchase", n))
        park(sqs, dead_letter, bodies[-1], "400 Event is not valid")
    for n in range(12, 17):
        bodies.append(event_body("signup", n))
        park(sqs, dead_letter, bodies[-1], None)
    for n in range(17, 19):
        bodies.append(event_body("purchase", n))
        park(sqs, dead_letter, bodies[-1], "429 Too many requests", stage="pinpoint:profile")
    bodies.append("not json {")
    park(sqs, dead_letter, bodies[-1], "body is not JSON", stage="decode")
    return bodies


def everything_on(sqs: Any, url: str) -> list[str]:
    """Every body on a queue (received and deleted)."""
    bodies: list[str] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=60, WaitTimeSeconds=0
        ).get("Messages", [])
        if not messages:
            return bodies
        for message in messages:
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])


def test_summary_counts_by_reason_event_type_and_stage_and_leaves_everything_visible(
    sqs: Any, queues: tuple[str, str]
) -> None:
    _, dead_letter = queues
    fill(sqs, dead_letter)
    summary = summarize(sqs, dead_letter, samples=2)
    assert summary.total == summary.selected == 20
    assert summary.by_reason["400 Event is not valid"] == 12
    assert summary.by_reason["body is not JSON"] == 1
    assert summary.by_event_type == Counter({"purchase": 14, "signup": 5, "(not an event)": 1})
    assert summary.by_rejected_at == Counter(
        {"pinpoint": 12, "redrive": 5, "pinpoint:profile": 2, "decode": 1}
    )
    assert summary.oldest is not None
    assert (datetime.now(UTC) - summary.oldest).total_seconds() < 60
    assert len(summary.samples) == 2
    text = summary.render(SPEC.dead_letter_queue, Selection(), datetime.now(UTC))
    assert "records the event again" in text  # pinpoint:profile replays the whole event
    # Released at once: a replay right after sees every message.
    visible = sqs.get_queue_attributes(
        QueueUrl=dead_letter, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert visible == "20"


def test_replay_moves_only_the_selected_valid_messages_bodies_unchanged(
    sqs: Any, queues: tuple[str, str], tmp_path: Path
) -> None:
    events, dead_letter = queues
    bodies = fill(sqs, dead_letter)
    selection = Selection(reason_contains=("not valid",), event_types=frozenset({"purchase"}))
    report = replay(sqs, dead_letter, events, Journal(tmp_path / "j"), selection)
    assert report.replayed == 12
    assert report.not_selected == 8
    assert sorted(everything_on(sqs, events)) == sorted(bodies[:12])
    left = everything_on(sqs, dead_letter)
    assert sorted(left) == sorted(bodies[12:])


def test_an_invalid_body_is_not_replayed_unless_asked(
    sqs: Any, queues: tuple[str, str], tmp_path: Path
) -> None:
    events, dead_letter = queues
    fill(sqs, dead_letter)
    decode = Selection(rejected_at=frozenset({"decode"}))
    report = replay(sqs, dead_letter, events, Journal(tmp_path / "j"), decode)
    assert (report.replayed, report.not_replayable) == (0, 1)
    report = replay(sqs, dead_letter, events, Journal(tmp_path / "j"), decode, include_invalid=True)
    assert report.replayed == 1
    assert everything_on(sqs, events) == ["not json {"]


def test_interrupted_replay_loses_nothing_duplicates_nothing_and_resumes(
    sqs: Any, queues: tuple[str, str], tmp_path: Path
) -> None:
    """Ctrl-C: the batch in flight is finished (sent and deleted), then the run stops."""
    events, dead_letter = queues
    bodies = fill(sqs, dead_letter)
    stop = threading.Event()
    batches = itertools.count(1)

    def stop_after_first_batch(sent: list[Any]) -> None:
        if next(batches) == 1:
            stop.set()

    journal = Journal(tmp_path / "journal")
    first = replay(
        sqs,
        dead_letter,
        events,
        journal,
        include_invalid=True,
        stop=stop,
        after_send=stop_after_first_batch,
    )
    assert first.interrupted
    assert 0 < first.replayed < 20
    on_events = everything_on(sqs, events)
    assert len(on_events) == first.replayed
    remaining = approximate(sqs, dead_letter)
    assert remaining + len(on_events) == 20  # nothing lost, nothing in both queues

    second = replay(sqs, dead_letter, events, Journal(tmp_path / "journal"), include_invalid=True)
    assert not second.interrupted
    assert first.replayed + second.replayed == 20
    assert sorted(on_events + everything_on(sqs, events)) == sorted(bodies)
    assert approximate(sqs, dead_letter) == 0


def approximate(sqs: Any, url: str) -> int:
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return sum(int(v) for v in attributes.values())


class Killed(BaseException):
    """The process dying between the send and the delete (not an Exception: nothing in
    the replay may catch it)."""


def test_replay_killed_between_send_and_delete_is_not_sent_twice(
    sqs: Any, queues: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    events, dead_letter = queues
    bodies = fill(sqs, dead_letter)
    batches = itertools.count(1)

    def die_on_second_batch(sent: list[Any]) -> None:
        if next(batches) == 2:
            raise Killed

    # A killed process releases nothing: its hold has to run out.
    monkeypatch.setattr(Scanner, "release", lambda self: None)
    with pytest.raises(Killed):
        replay(
            sqs,
            dead_letter,
            events,
            Journal(tmp_path / "journal"),
            include_invalid=True,
            hold_seconds=2,
            after_send=die_on_second_batch,
        )
    monkeypatch.undo()
    assert len(Journal(tmp_path / "journal").pending) == 10  # sent, not yet deleted
    time.sleep(2.5)

    second = replay(sqs, dead_letter, events, Journal(tmp_path / "journal"), include_invalid=True)
    assert second.already_sent == 10
    assert sorted(everything_on(sqs, events)) == sorted(bodies)  # each exactly once
    assert approximate(sqs, dead_letter) == 0
    assert not (tmp_path / "journal").exists()


class MemoryQueues:
    """SQS's rules for the calls a replay makes: receive hides for the visibility timeout,
    delete needs the latest receipt handle; enough for 100,000 messages in seconds."""

    def __init__(self) -> None:
        self.queues: dict[str, dict[str, dict[str, Any]]] = {"dlq": {}, "events": {}}
        self.order: dict[str, deque[str]] = {"dlq": deque(), "events": deque()}
        self._ids = itertools.count()
        self.now = 0.0

    # boto3's keyword names, as the replay calls them.
    def send_message_batch(self, **call: Any) -> dict[str, Any]:
        for entry in call["Entries"]:
            message_id = f"m{next(self._ids)}"
            self.queues[call["QueueUrl"]][message_id] = {
                "Body": entry["MessageBody"],
                "hidden_until": 0.0,
                "handle": None,
                "sent": 1_000,
            }
            self.order[call["QueueUrl"]].append(message_id)
        return {"Successful": [{"Id": e["Id"]} for e in call["Entries"]], "Failed": []}

    def receive_message(self, **call: Any) -> dict[str, Any]:
        queue = self.queues[call["QueueUrl"]]
        found: list[dict[str, Any]] = []
        order = self.order[call["QueueUrl"]]
        while order and len(found) < call["MaxNumberOfMessages"]:
            message_id = order.popleft()
            message = queue.get(message_id)
            if message is None:
                continue
            if message["hidden_until"] > self.now:
                order.append(message_id)
                break
            message["hidden_until"] = self.now + call["VisibilityTimeout"]
            message["handle"] = f"{message_id}/{next(self._ids)}"
            order.append(message_id)
            found.append(
                {
                    "MessageId": message_id,
                    "ReceiptHandle": message["handle"],
                    "Body": message["Body"],
                    "Attributes": {"SentTimestamp": str(message["sent"])},
                    "MessageAttributes": {
                        "rejection_reason": {"DataType": "String", "StringValue": "500 outage"}
                    },
                }
            )
        return {"Messages": found}

    def delete_message_batch(self, **call: Any) -> dict[str, Any]:
        queue = self.queues[call["QueueUrl"]]
        for entry in call["Entries"]:
            message_id = entry["ReceiptHandle"].split("/")[0]
            if queue.get(message_id, {}).get("handle") == entry["ReceiptHandle"]:
                del queue[message_id]
        return {"Successful": [{"Id": e["Id"]} for e in call["Entries"]], "Failed": []}

    def change_message_visibility_batch(self, **call: Any) -> dict[str, Any]:
        return {"Successful": [], "Failed": []}

    def get_queue_attributes(self, **call: Any) -> dict[str, Any]:
        return {"Attributes": {"MessageRetentionPeriod": str(14 * 24 * 3600)}}


@pytest.fixture
def fast_disk(tmp_path: Path) -> Iterator[Path]:
    """The journal syncs each batch to disk; on tmpfs that costs nothing, so 10,000 batches
    measure the replay rather than this machine's disk."""
    shm = Path("/dev/shm")
    if not shm.is_dir():
        yield tmp_path
        return
    directory = Path(tempfile.mkdtemp(dir=shm))
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


def test_a_replay_of_100000_messages_shows_progress_and_a_final_count(fast_disk: Path) -> None:
    sqs = MemoryQueues()
    body = event_body("purchase", 1)
    for _start in range(0, 100_000, 10):
        sqs.send_message_batch(
            QueueUrl="dlq", Entries=[{"Id": str(i), "MessageBody": body} for i in range(10)]
        )
    ticks = itertools.count()
    stream = io.StringIO()
    progress = Progress(
        "dlq replay", 100_000, stream, interval=2.0, clock=lambda: next(ticks) * 0.01
    )
    report = replay(sqs, "dlq", "events", Journal(fast_disk / "journal"), progress=progress)  # type: ignore[arg-type]
    assert report.replayed == 100_000
    assert len(sqs.queues["events"]) == 100_000
    assert sqs.queues["dlq"] == {}
    lines = stream.getvalue().splitlines()
    assert len(lines) >= 10
    assert lines[0].startswith("dlq replay: ")
    assert "of ~100,000 scanned" in lines[-1]
    assert report.render("dlq", "events").startswith("replayed 100,000 messages")


def test_the_command_line_summary_and_replay(
    sqs: Any, queues: tuple[str, str], tmp_path: Path
) -> None:
    events, dead_letter = queues
    fill(sqs, dead_letter)
    out, err = io.StringIO(), io.StringIO()
    status = ops.main(
        ["dlq", "--stage", STAGE, "--samples", "1", "--event-type", "signup"], out=out, err=err
    )
    assert status == 0
    text = out.getvalue()
    assert "pixel-relay-dev-events-dlq: 20 messages; 5 match event type in signup" in text
    assert "moved by the redrive policy" in text
    assert "sample " in text

    out = io.StringIO()
    status = ops.main(
        [
            "dlq",
            "replay",
            "--stage",
            STAGE,
            "--rejected-at",
            "redrive",
            "--journal",
            str(tmp_path / "journal"),
        ],
        out=out,
        err=err,
    )
    assert status == 0
    assert out.getvalue().startswith(
        "replayed 5 messages from pixel-relay-dev-events-dlq to pixel-relay-dev-events"
    )
    assert len(everything_on(sqs, events)) == 5


def test_a_limited_replay_sends_that_many_and_leaves_the_rest_visible(
    sqs: Any, queues: tuple[str, str], tmp_path: Path
) -> None:
    events, dead_letter = queues
    fill(sqs, dead_letter)
    report = replay(sqs, dead_letter, events, Journal(tmp_path / "j"), limit=3)
    assert report.replayed == 3
    assert len(everything_on(sqs, events)) == 3
    visible = sqs.get_queue_attributes(
        QueueUrl=dead_letter, AttributeNames=["ApproximateNumberOfMessages"]
    )["Attributes"]["ApproximateNumberOfMessages"]
    assert visible == "17"  # released at once, ready for the next run
