"""An unfiltered `ops dlq replay` is SQS's own message move task (the console's "Start DLQ
redrive"): SQS receives, sends and deletes server-side, so killing the command changes
nothing and a rerun follows the running task instead of starting a second one.

moto 5.2.5 does not implement StartMessageMoveTask, ListMessageMoveTasks or
CancelMessageMoveTask (its server answers 500 NotImplementedError, checked below): these tests
run the command against a stand-in for those three calls, with every other SQS call on moto
and every request checked against botocore's model."""

from __future__ import annotations

import io
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from devtools.ops import cli as ops
from devtools.ops.dlq.journal import Journal
from devtools.ops.dlq.move_task import move_all
from tests.devtools.ops.dead_letters import STAGE, approximate, everything_on, fill
from tests.devtools.ops.move_task_stand_in import MoveTaskStandIn, StandInOps


def run(stand_in: Any, journal: Path, *extra: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["dlq", "replay", "--stage", STAGE, "--journal", str(journal), "--poll-seconds", "0"]
    status = ops.main([*argv, *extra], ops=StandInOps(stand_in), out=out, err=err)
    return status, out.getvalue(), err.getvalue()


def test_an_unfiltered_replay_is_an_sqs_move_task(
    sqs: Any, queues: tuple[str, str], tmp_path: Path
) -> None:
    events, dead_letter = queues
    bodies = fill(sqs, dead_letter)
    stand_in = MoveTaskStandIn(sqs, per_poll=7)
    status, out, err = run(stand_in, tmp_path / "journal")
    assert status == 0, out + err
    assert "SQS moved 20 of ~20 messages" in out
    assert "task COMPLETED" in out
    assert "dlq move: " in err  # progress while it runs
    assert stand_in.started == 1
    assert sorted(everything_on(sqs, events)) == sorted(bodies)  # each once, invalid one too
    assert approximate(sqs, dead_letter) == 0


def test_a_rerun_follows_the_task_a_killed_run_started_instead_of_starting_another(
    sqs: Any, queues: tuple[str, str], tmp_path: Path
) -> None:
    events, dead_letter = queues
    bodies = fill(sqs, dead_letter)
    stand_in = MoveTaskStandIn(sqs)
    arn = sqs.get_queue_attributes(QueueUrl=dead_letter, AttributeNames=["QueueArn"])
    destination = sqs.get_queue_attributes(QueueUrl=events, AttributeNames=["QueueArn"])
    stand_in.start_message_move_task(
        SourceArn=arn["Attributes"]["QueueArn"],
        DestinationArn=destination["Attributes"]["QueueArn"],
    )  # the killed run got this far
    status, out, _ = run(stand_in, tmp_path / "journal")
    assert status == 0
    assert "(a task started by an earlier run)" in out
    assert stand_in.started == 1
    assert sorted(everything_on(sqs, events)) == sorted(bodies)


@pytest.mark.parametrize(
    ("state", "says"),
    [("sent", "hidden until"), ("sending", "in doubt")],
)
def test_no_move_task_while_the_journal_says_a_message_is_or_may_be_sent(
    sqs: Any, queues: tuple[str, str], tmp_path: Path, state: str, says: str
) -> None:
    """The task would move, so duplicate, a message an interrupted journalled run sent.
    Asked for by name it refuses; by default the journalled path replays instead
    (tests/devtools/ops/test_ops_dlq_in_doubt.py follows what it does with the rest)."""
    events, dead_letter = queues
    fill(sqs, dead_letter)
    journal = Journal(tmp_path / "journal")
    journal._append([f"{state} some-message-id {time.time() + 60:.3f}"], durable=True)
    stand_in = MoveTaskStandIn(sqs)
    status, out, _ = run(stand_in, journal.path, "--method", "move-task")
    assert status == 1
    assert "not starting an SQS move task" in out
    assert says in out
    assert stand_in.started == 0
    assert approximate(sqs, dead_letter) == 20

    status, out, err = run(stand_in, journal.path)
    assert "replaying with the journalled path, which settles them" in err
    assert stand_in.started == 0
    assert out.startswith("replayed 19 messages")  # all but the body that is no event
    assert len(everything_on(sqs, events)) == 19


def test_ctrl_c_cancels_the_task_and_what_it_moved_stays_moved(
    sqs: Any, queues: tuple[str, str]
) -> None:
    events, dead_letter = queues
    bodies = fill(sqs, dead_letter)
    stand_in = MoveTaskStandIn(sqs, per_poll=5)
    stop = threading.Event()
    stop.set()  # Ctrl-C as soon as the task runs
    report = move_all(stand_in, dead_letter, events, stop, io.StringIO(), poll_seconds=0)  # type: ignore[arg-type]
    assert report.cancelled
    assert report.status == "CANCELLED"
    moved = everything_on(sqs, events)
    assert len(moved) == report.moved == 5
    assert sorted(moved + everything_on(sqs, dead_letter)) == sorted(bodies)  # none twice


def test_moto_has_no_move_task_so_auto_falls_back_to_the_journalled_path(
    sqs: Any, queues: tuple[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """When moto implements the three calls, this fails: replace the stand-in with moto."""
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "1")  # moto's 500 is not worth retrying here
    events, dead_letter = queues
    fill(sqs, dead_letter)
    out, err = io.StringIO(), io.StringIO()
    argv = ["dlq", "replay", "--stage", STAGE, "--journal", str(tmp_path / "journal")]
    status = ops.main(argv, out=out, err=err)
    # One line naming the call and the status; before, moto's whole HTML error page.
    assert (
        "SQS cannot run a move task here (ListMessageMoveTasks failed: HTTP 500: an HTML page"
        " (500 Internal Server Error), not an answer from the service)\n"
    ) in err.getvalue()
    assert "<" not in err.getvalue()
    assert "replaying with the journalled path instead" in err.getvalue()
    assert status == 0, out.getvalue()
    assert out.getvalue().startswith("replayed 19 messages")  # the invalid body stays
    assert len(everything_on(sqs, events)) == 19
    with pytest.raises(SystemExit, match="SQS cannot run a move task here"):
        ops.main([*argv, "--method", "move-task"], out=io.StringIO(), err=io.StringIO())
