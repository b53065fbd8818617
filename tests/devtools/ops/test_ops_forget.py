"""`ops forget`'s parts on moto: the dead-letter queue (theirs deleted, no one else's), the
wait for batches in flight, what a failure leaves to do, and the refusals that name what
to fix."""

from __future__ import annotations

import io
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.destinations.base import Destination, Visitor
from chalicelib.events import Event
from chalicelib.outcomes import Outcome, TimeLeft, Verdict
from devtools.deploy.erasure_table import ensure_erasure_table
from devtools.offline import REGION
from devtools.ops import cli as ops
from devtools.ops.dlq.erase import erase_dead_letters
from devtools.ops.dlq.journal import Journal
from devtools.ops.forget import ErasureList, ForgetPlan, run_forget
from devtools.queue_spec import chalice_config
from tests.devtools.ops.dead_letters import SPEC, Queues, everything_on, park

TABLE = "pixel-relay-dev-erasure"


def event_body(endpoint: str, user: str | None = None, **more: Any) -> str:
    return json.dumps(
        {"version": 1, "event_id": "e-1", "event_type": "view", "endpoint_id": endpoint}
        | ({"user_id": user} if user else {})
        | more
    )


def test_only_their_dead_letters_are_deleted_whatever_stage_parked_them(
    sqs: Any, queues: Queues
) -> None:
    _, dead_letter = queues
    theirs = [
        event_body("E1"),  # a destination's rejection
        event_body("E9", user="U1"),  # their user id on another device
        event_body("E1", destinations=["pinpoint"]),  # parked for one destination
        json.dumps({"endpoint_id": "E1", "version": 7}),  # a decode letter that is JSON
    ]
    others = [
        event_body("E10"),  # an id that contains theirs is not theirs
        event_body("xE1", user="U10"),
        event_body("U1", user="E1"),  # their ids, each in the other field: someone else
        "E1 is not JSON",  # cannot be attributed: left, counted
        "not JSON at all",
    ]
    for body in theirs + others:
        park(sqs, dead_letter, body, "400 refused")
    park(sqs, dead_letter, event_body("E1", user="U1"), None)  # moved by the redrive policy
    report = erase_dead_letters(sqs, dead_letter, ["E1"], ["U1"], hold_seconds=30)
    assert (report.scanned, report.deleted, report.unreadable) == (10, 5, 1)
    assert report.complete
    assert sorted(everything_on(sqs, dead_letter)) == sorted(others)


def test_messages_another_reader_holds_are_counted_and_a_rerun_deletes_them(
    sqs: Any, queues: Queues
) -> None:
    _, dead_letter = queues
    park(sqs, dead_letter, event_body("E1"), "400 refused")
    park(sqs, dead_letter, event_body("E1"), "400 refused")
    held = sqs.receive_message(QueueUrl=dead_letter, MaxNumberOfMessages=1, VisibilityTimeout=60)
    assert held["Messages"]
    report = erase_dead_letters(sqs, dead_letter, ["E1"], [], hold_seconds=30)
    assert (report.deleted, report.held_elsewhere, report.complete) == (1, 1, False)
    assert "could not be read" in "\n".join(report.render("dlq"))
    sqs.change_message_visibility(
        QueueUrl=dead_letter,
        ReceiptHandle=held["Messages"][0]["ReceiptHandle"],
        VisibilityTimeout=0,
    )
    again = erase_dead_letters(sqs, dead_letter, ["E1"], [], hold_seconds=30)
    assert (again.deleted, again.complete) == (1, True)
    assert erase_dead_letters(sqs, dead_letter, ["E1"], [], 30).render("dlq") == [
        "dead-letter queue dlq: nothing left (0 messages read)"
    ]


class Scripted(Destination):
    """A destination whose forget answers as told, recording who it was asked about."""

    def __init__(self, name: str, outcome: Outcome, announces: bool = False) -> None:
        self.name = name
        self.outcome = outcome
        self.announces_erasure = announces  # type: ignore[misc]
        self.asked: list[Visitor] = []

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        raise AssertionError("forget never delivers")

    def forget(self, visitor: Visitor, time_left: TimeLeft = None) -> Outcome:
        self.asked.append(visitor)
        return self.outcome


@pytest.fixture
def erasure_list(moto: str) -> ErasureList:
    dynamodb = boto3.client("dynamodb", endpoint_url=moto, region_name=REGION)
    ensure_erasure_table(dynamodb, {"ERASURE_TABLE": TABLE})
    return ErasureList(dynamodb, TABLE)


def plan(
    sqs: Any,
    erasure_list: ErasureList,
    destinations: list[Destination],
    tmp_path: Path,
    now: list[float],
    slept: list[float],
) -> ForgetPlan:
    return ForgetPlan(
        stage="dev",
        ids=[("endpoint_id", "E1")],
        erasure_list=erasure_list,
        destinations=destinations,
        sqs=sqs,
        dead_letter_queue=SPEC.dead_letter_queue,
        journal=Journal(tmp_path / "journal"),
        in_flight_seconds=65,
        clock=lambda: now[0],
        sleep=slept.append,
    )


def test_the_first_run_waits_out_batches_in_flight_and_a_failure_is_left_for_the_rerun(
    sqs: Any, queues: Queues, erasure_list: ErasureList, tmp_path: Path
) -> None:
    now, slept = [1_800_000_000.0], list[float]()
    stream = Scripted("stream", Outcome(Verdict.RETRY, "PutRecords failed: 500"), announces=True)
    profiles = Scripted(
        "in-place", Outcome(Verdict.DELIVERED, "1 object(s) and 1 profile(s) deleted")
    )
    out = io.StringIO()
    assert run_forget(plan(sqs, erasure_list, [profiles, stream], tmp_path, now, slept), out) == 1
    assert slept == [65]
    assert "  stream: NOT DONE: PutRecords failed: 500" in out.getvalue()
    assert out.getvalue().splitlines()[-1] == "not finished: stream; run the same command again"
    [asked] = stream.asked
    assert asked == Visitor(endpoint_id="E1", erased_at="2027-01-15T08:00:00.000Z")
    # The rerun, later: no wait, the record sent with the first run's time, and remembered.
    now[0] += 600
    stream.outcome = Outcome(Verdict.DELIVERED, "erasure record sent")
    out = io.StringIO()
    assert run_forget(plan(sqs, erasure_list, [profiles, stream], tmp_path, now, slept), out) == 0
    assert slept == [65]
    assert stream.asked[-1].erased_at == "2027-01-15T08:00:00.000Z"
    out = io.StringIO()
    assert run_forget(plan(sqs, erasure_list, [profiles, stream], tmp_path, now, slept), out) == 0
    assert len(stream.asked) == 2  # not sent a third time
    assert "stream: erasure record sent on an earlier run" in out.getvalue()
    assert len(profiles.asked) == 3  # an in-place erasure looks again every time


def test_a_replay_running_on_this_machine_leaves_the_dead_letters_for_the_rerun(
    sqs: Any, queues: Queues, erasure_list: ErasureList, tmp_path: Path
) -> None:
    journal = Journal(tmp_path / "journal")
    out = io.StringIO()
    with journal.lock():
        status = run_forget(plan(sqs, erasure_list, [], tmp_path, [0.0], []), out)
    assert status == 1
    assert "a replay of it is running on this machine" in out.getvalue()


def test_their_dead_letters_leave_the_replay_journal_too(
    sqs: Any, queues: Queues, erasure_list: ErasureList, tmp_path: Path
) -> None:
    """A replay interrupted while sending their message left it in doubt; once forget has
    deleted it, no replay reports it again."""
    _, dead_letter = queues
    park(sqs, dead_letter, event_body("E1"), "400 refused")
    park(sqs, dead_letter, event_body("E2"), "400 refused")
    ids = {
        json.loads(m["Body"])["endpoint_id"]: m["MessageId"]
        for m in sqs.receive_message(
            QueueUrl=dead_letter, MaxNumberOfMessages=10, VisibilityTimeout=0
        )["Messages"]
    }
    journal = Journal(tmp_path / "journal")
    journal.sending([ids["E1"], ids["E2"]], hidden_until=0.0)
    assert run_forget(plan(sqs, erasure_list, [], tmp_path, [0.0], []), io.StringIO()) == 0
    assert Journal(tmp_path / "journal").entries.keys() == {ids["E2"]}


def project_with(tmp_path: Path, **environment: str) -> Path:
    (tmp_path / ".chalice").mkdir()
    config = chalice_config()
    config["stages"]["dev"]["environment_variables"].update(environment)
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    return tmp_path


def forget(project: Path, *arguments: str) -> int:
    return ops.main(
        ["forget", "--stage", "dev", "--project-dir", str(project), *arguments],
        out=io.StringIO(),
        err=io.StringIO(),
    )


def test_a_stage_without_erasure_is_refused_naming_the_setting(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="erasure is off: set ERASURE_TABLE"):
        forget(project_with(tmp_path), "--endpoint-id", "E1")


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ((), "forget needs --endpoint-id or --user-id"),
        (("--endpoint-id", "has space"), "--endpoint-id 'has space': must be printable ASCII"),
        (("--user-id", "x" * 129), "--user-id 'x+': is 129 characters; the limit is 128"),
    ],
)
def test_ids_are_checked_as_the_pixel_checks_them(
    tmp_path: Path, arguments: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit, match=message):
        forget(project_with(tmp_path, ERASURE_TABLE=TABLE), *arguments)


def test_a_missing_table_is_one_line_naming_the_deploy(
    tmp_path: Path, moto: str, queues: Queues
) -> None:
    project = project_with(tmp_path, ERASURE_TABLE=TABLE, DESTINATIONS="pinpoint")
    with pytest.raises(SystemExit) as stopped:
        forget(project, "--endpoint-id", "E1", "--in-flight-seconds", "0")
    assert str(stopped.value) == (
        f"forget stopped: ERASURE_TABLE {TABLE} does not exist in this account and region:"
        " deploy stage dev (make deploy STAGE=dev, or its stack), which creates it"
    )
