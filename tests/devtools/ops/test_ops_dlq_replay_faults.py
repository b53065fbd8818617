"""`ops dlq replay` under the faults that used to duplicate: a real SIGKILL between a send and
its delete (rerun at once, while the killed run's receives are still hidden, and again later),
a DeleteMessageBatch whose answer never arrives, a send cut off mid-call. Every run goes
through a loopback fault proxy in front of moto; the verdict counts the messages on the events
queue per dead-letter event: exactly once each, or still on the dead-letter queue."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import boto3
import pytest
from botocore.config import Config

from devtools.offline import REGION
from devtools.ops.dlq.journal import Journal
from devtools.ops.dlq.replay import REPLAY_MARKER, replay
from devtools.paths import ROOT
from tests.devtools.ops.dead_letters import STAGE, Queues, event_body
from tests.fault_proxy import FaultProxy, api_action, wait_for_calls

PARKED = 400
HOLD = 20  # seconds: long enough for a rerun to finish inside the killed run's hold, under load


class WithholdingProxy(FaultProxy):
    """The fault proxy plus the fault it lacks: a request that never reaches the server, as
    when a process dies, or the network cuts, before the request left. `hang` keeps the
    caller waiting (to kill it there); otherwise the connection is cut at once."""

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream)
        self._withheld: dict[str, list[int | bool | None]] = {}

    def withhold(
        self, action: str, times: int | None = 1, after: int = 0, hang: bool = False
    ) -> None:
        """Withhold calls number after+1 … after+times of `action` (all later ones if None)."""
        with self._lock:
            self._withheld[action] = [after, times, hang]

    def clear(self, action: str | None = None) -> None:
        super().clear(action)
        with self._lock:
            if action is None:
                self._withheld.clear()
            else:
                self._withheld.pop(action, None)

    def _relay(self, request: BaseHTTPRequestHandler) -> None:
        length = int(request.headers.get("Content-Length") or 0)
        body = request.rfile.read(length) if length else b""
        action = api_action(request.headers.get("X-Amz-Target"), body)
        with self._lock:
            plan = self._withheld.get(action)
            withhold = False
            if plan is not None:
                skip, times, hang = plan
                assert isinstance(skip, int)
                if skip > 0:
                    plan[0] = skip - 1
                elif times is None or (isinstance(times, int) and times > 0):
                    withhold = True
                    if isinstance(times, int):
                        plan[1] = times - 1
        if not withhold:
            request.rfile = io.BytesIO(body)
            super()._relay(request)
            return
        with self._lock:
            self.calls[action] += 1
            self.faults_applied[action] += 1
        if hang:
            self._stopping.wait(60)
        request.close_connection = True
        request.connection.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def proxy(moto: str) -> Iterator[WithholdingProxy]:
    with WithholdingProxy(moto) as started:
        yield started


def park_many(sqs: Any, url: str, count: int = PARKED) -> set[str]:
    """`count` events parked by the consumer; their event ids."""
    for start in range(0, count, 10):
        sqs.send_message_batch(
            QueueUrl=url,
            Entries=[
                {
                    "Id": str(n),
                    "MessageBody": event_body("purchase", n),
                    "MessageAttributes": {
                        "rejection_reason": {"DataType": "String", "StringValue": "500 outage"},
                        "rejected_at_stage": {"DataType": "String", "StringValue": "pinpoint"},
                    },
                }
                for n in range(start, min(start + 10, count))
            ],
        )
    return {f"id-{n}" for n in range(count)}


def take_all(sqs: Any, url: str) -> list[dict[str, Any]]:
    """Every message on a queue now (received and deleted), attributes included."""
    taken: list[dict[str, Any]] = []
    while True:
        messages = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=10,
            VisibilityTimeout=60,
            WaitTimeSeconds=0,
            MessageAttributeNames=["All"],
        ).get("Messages", [])
        if not messages:
            return taken
        taken.extend(messages)
        sqs.delete_message_batch(
            QueueUrl=url,
            Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)
            ],
        )


def event_ids(messages: list[dict[str, Any]]) -> Counter[str]:
    return Counter(json.loads(m["Body"])["event_id"] for m in messages)


def markers(messages: list[dict[str, Any]]) -> Counter[str]:
    return Counter(m["MessageAttributes"][REPLAY_MARKER]["StringValue"] for m in messages)


def depth(sqs: Any, url: str) -> tuple[int, int]:
    """(visible, hidden) on a queue."""
    attributes = sqs.get_queue_attributes(
        QueueUrl=url,
        AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"],
    )["Attributes"]
    return (
        int(attributes["ApproximateNumberOfMessages"]),
        int(attributes["ApproximateNumberOfMessagesNotVisible"]),
    )


def ops_replay(journal: Path, sqs_url: str, *extra: str, hold: int = HOLD) -> subprocess.Popen[str]:
    """`make ops ARGS="dlq replay ..."` as an operator runs it, SQS through `sqs_url`."""
    environment = dict(os.environ, AWS_ENDPOINT_URL_SQS=sqs_url, PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "devtools.ops",
            "dlq",
            "replay",
            "--stage",
            STAGE,
            "--method",
            "journal",
            "--hold",
            str(hold),
            "--journal",
            str(journal),
            *extra,
        ],
        cwd=ROOT,
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(process: subprocess.Popen[str]) -> tuple[int, str]:
    out, err = process.communicate(timeout=60)
    return process.returncode, out + err


def kill(process: subprocess.Popen[str]) -> None:
    process.send_signal(signal.SIGKILL)
    process.communicate(timeout=10)
    assert process.returncode == -signal.SIGKILL


def test_sigkill_between_send_and_delete_then_reruns_put_each_event_on_the_queue_once(
    sqs: Any, queues: Queues, proxy: WithholdingProxy, moto: str, tmp_path: Path
) -> None:
    """The scenario that put 410 messages on the events queue for 400 events."""
    parked = park_many(sqs, queues.dead_letter)
    journal = tmp_path / "replay.journal"
    # The 36th delete never reaches SQS and the process is killed while waiting for it: 350
    # messages sent and deleted, 10 sent and still on the dead-letter queue, hidden.
    proxy.withhold("DeleteMessageBatch", times=1, after=35, hang=True)
    first = ops_replay(journal, proxy.url)
    assert wait_for_calls(proxy, "DeleteMessageBatch", 36, timeout=60)
    killed_at = time.monotonic()
    kill(first)
    on_events = take_all(sqs, queues.events)
    assert len(on_events) == 360
    assert depth(sqs, queues.dead_letter) == (40, 10)  # the 10 are in flight, not deleted

    # At once: the killed run's batch is hidden. The old journal forgot it here.
    status, text = finish(ops_replay(journal, proxy.url))
    took = time.monotonic() - killed_at
    assert took < HOLD, f"rerun too slow to test the in-flight case: {took:.1f} s\n{text}"
    assert status == 1, text
    assert "replayed 40 messages" in text
    assert "10 sent by an interrupted run, still hidden by its hold" in text
    on_events += take_all(sqs, queues.events)
    assert len(on_events) == 400

    # Later, once the hold is over: the 10 are deleted, not sent again.
    time.sleep(max(0.0, killed_at + HOLD + 1.2 - time.monotonic()))
    status, text = finish(ops_replay(journal, proxy.url))
    assert status == 0, text
    assert "replayed 0 messages" in text
    assert "10 sent by an earlier run: deleted now, not sent again" in text
    on_events += take_all(sqs, queues.events)

    counts = event_ids(on_events)
    assert set(counts) == parked
    assert set(counts.values()) == {1}  # each event exactly once
    assert set(markers(on_events).values()) == {1}  # each dead-letter message replayed once
    assert depth(sqs, queues.dead_letter) == (0, 0)
    assert not journal.exists()


def test_sigkill_while_the_delete_answer_is_on_its_way_never_resends(
    sqs: Any, queues: Queues, proxy: WithholdingProxy, tmp_path: Path
) -> None:
    """The delete reaches SQS and is carried out; its answer never reaches the killed run."""
    parked = park_many(sqs, queues.dead_letter, 100)
    journal = tmp_path / "replay.journal"
    proxy.delay("DeleteMessageBatch", seconds=30, times=1)
    first = ops_replay(journal, proxy.url, hold=4)
    assert wait_for_calls(proxy, "DeleteMessageBatch", 1, timeout=30)
    killed_at = time.monotonic()
    kill(first)
    status, text = finish(ops_replay(journal, proxy.url, hold=4))
    assert "replayed 90 messages" in text, text
    time.sleep(max(0.0, killed_at + 4 + 1.2 - time.monotonic()))
    status, text = finish(ops_replay(journal, proxy.url, hold=4))
    assert status == 0, text
    assert "replayed 0 messages" in text
    # Gone from the queue as far as anyone can tell, but absence proves nothing: kept.
    assert "10 sent, their delete not confirmed: kept in the journal" in text
    assert len(Journal(journal).entries) == 10

    counts = event_ids(take_all(sqs, queues.events))
    assert set(counts) == parked
    assert set(counts.values()) == {1}
    assert depth(sqs, queues.dead_letter) == (0, 0)


def test_sigkill_during_the_send_leaves_the_batch_in_doubt_never_sent_twice(
    sqs: Any, queues: Queues, proxy: WithholdingProxy, tmp_path: Path
) -> None:
    """The send reached SQS, its answer did not reach the killed run: the journal says
    `sending`, not `sent`. Those messages may be on the events queue (here they are), so no
    later run sends them again on its own, nor deletes them (which could lose them)."""
    parked = park_many(sqs, queues.dead_letter, 50)
    journal = tmp_path / "replay.journal"
    proxy.delay("SendMessageBatch", seconds=30, times=1)
    first = ops_replay(journal, proxy.url, hold=3)
    assert wait_for_calls(proxy, "SendMessageBatch", 1, timeout=30)
    killed_at = time.monotonic()
    kill(first)
    time.sleep(max(0.0, killed_at + 3.5 - time.monotonic()))
    status, text = finish(ops_replay(journal, proxy.url, hold=3))
    assert status == 1, text
    assert "replayed 40 messages" in text
    assert "10 in doubt: a run was stopped during their send" in text
    assert text.count("    in doubt: ") == 10

    counts = event_ids(take_all(sqs, queues.events))
    assert set(counts) == parked  # the cut-off send did land
    assert set(counts.values()) == {1}
    left = event_ids(take_all(sqs, queues.dead_letter))
    assert len(left) == 10  # and stay on the dead-letter queue for the operator to decide


def single_attempt(url: str) -> Any:
    return boto3.client(
        "sqs",
        endpoint_url=url,
        region_name=REGION,
        config=Config(retries={"total_max_attempts": 1}, read_timeout=5),
    )


def retrying(url: str) -> Any:
    """As ops.sqs for receives and deletes: botocore's retries (kept short here)."""
    config = Config(retries={"total_max_attempts": 2, "mode": "standard"}, read_timeout=5)
    return boto3.client("sqs", endpoint_url=url, region_name=REGION, config=config)


def test_a_delete_that_never_reached_sqs_is_deleted_on_the_next_run_not_resent(
    sqs: Any, queues: Queues, proxy: WithholdingProxy, tmp_path: Path
) -> None:
    parked = park_many(sqs, queues.dead_letter, 30)
    journal = Journal(tmp_path / "replay.journal")
    proxy.withhold("DeleteMessageBatch", times=None)
    # Retrying (as ops.sqs does): the release after the run must not trip over a connection
    # the proxy cut. Sends go straight to the events queue.
    through_proxy = retrying(proxy.url)
    first = replay(
        through_proxy,
        queues.dead_letter,
        queues.events,
        journal,
        hold_seconds=30,
        send_sqs=sqs,
    )
    assert (first.replayed, first.delete_failed) == (30, 30)
    assert first.incomplete()
    assert depth(sqs, queues.dead_letter) == (30, 0)  # released at once for the next run
    proxy.clear()

    second = replay(through_proxy, queues.dead_letter, queues.events, Journal(journal.path))
    assert (second.replayed, second.already_sent) == (0, 30)
    assert not second.incomplete()
    counts = event_ids(take_all(sqs, queues.events))
    assert set(counts) == parked
    assert set(counts.values()) == {1}
    assert depth(sqs, queues.dead_letter) == (0, 0)
    assert not journal.path.exists()


def test_a_dropped_delete_answer_is_never_a_reason_to_send_again(
    sqs: Any, queues: Queues, proxy: WithholdingProxy, tmp_path: Path
) -> None:
    """DeleteMessageBatch carried out, its answer lost (FaultProxy.drop_answer), also for
    botocore's retry and the tool's own: the run cannot know the messages are gone."""
    parked = park_many(sqs, queues.dead_letter, 10)
    journal = Journal(tmp_path / "replay.journal")
    proxy.drop_answer("DeleteMessageBatch", times=None)
    first = replay(retrying(proxy.url), queues.dead_letter, queues.events, journal, hold_seconds=2)
    assert (first.replayed, first.delete_failed) == (10, 10)
    assert proxy.faults_applied["DeleteMessageBatch"] >= 2
    assert depth(sqs, queues.dead_letter) == (0, 0)  # they were deleted all the same
    proxy.clear()
    time.sleep(2 + 1.2)  # the hold and the tool's margin
    second = replay(retrying(proxy.url), queues.dead_letter, queues.events, Journal(journal.path))
    assert (second.replayed, second.sent_not_seen) == (0, 10)  # gone, kept until proven gone
    assert len(Journal(journal.path).entries) == 10
    counts = event_ids(take_all(sqs, queues.events))
    assert set(counts) == parked
    assert set(counts.values()) == {1}


def test_a_send_whose_answer_is_lost_is_not_retried_into_a_duplicate(
    sqs: Any, queues: Queues, proxy: WithholdingProxy, tmp_path: Path
) -> None:
    """botocore would retry it (and enqueue it twice); the replay sends with one attempt and
    keeps the batch in doubt on the dead-letter queue instead."""
    parked = park_many(sqs, queues.dead_letter, 30)
    journal = Journal(tmp_path / "replay.journal")
    proxy.drop_answer("SendMessageBatch", times=1)
    report = replay(
        sqs,
        queues.dead_letter,
        queues.events,
        journal,
        send_sqs=single_attempt(proxy.url),
    )
    assert (report.replayed, report.send_unanswered) == (20, 10)
    assert "10 in doubt" in report.render("dlq", "events")
    counts = event_ids(take_all(sqs, queues.events))
    assert set(counts) == parked
    assert set(counts.values()) == {1}
    assert depth(sqs, queues.dead_letter) == (10, 0)

    # The operator checked and accepts a possible duplicate: now they are sent and deleted.
    again = replay(
        sqs, queues.dead_letter, queues.events, Journal(journal.path), resend_in_doubt=True
    )
    assert (again.replayed, again.in_doubt_resent) == (10, 10)
    assert depth(sqs, queues.dead_letter) == (0, 0)
    assert not journal.path.exists()
