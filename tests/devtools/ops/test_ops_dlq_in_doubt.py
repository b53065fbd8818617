"""`dlq replay` after a send that got no answer: the default command is never stuck.

A journalled run killed during its send leaves those messages in doubt: they may be on the
events queue already. Before, every later default run refused to start (a move task would
move them a second time) until `--method journal` was given, and even then they stayed in
doubt. Now the default run takes the journalled path while the journal holds anything,
settles in-doubt messages from the consumer's dedupe table where the stage has one (found
delivered: deleted, not sent; not found once a landed copy has had time to be delivered:
sent again, the table answering for the first copy), replays the rest, and names the one
command for what it cannot settle (devtools/ops/dlq/in_doubt.py, docs/operations.md).
"""

from __future__ import annotations

import io
import json
import time
from pathlib import Path
from typing import Any

import boto3

from chalicelib.dedupe import DynamoDeliveryStore
from chalicelib.events import Event
from devtools.offline import REGION
from devtools.ops import cli as ops
from devtools.ops.dlq.journal import Journal
from devtools.queue_spec import QueueSpec
from tests.devtools.ops.dead_letters import STAGE, Queues, everything_on, fill, park
from tests.devtools.ops.move_task_stand_in import MoveTaskStandIn, StandInOps

TABLE = "pixel-relay-dev-dedupe"
SPEC = QueueSpec.for_stage(STAGE)
QUIET = SPEC.visibility_timeout_seconds * SPEC.max_receive_count


def in_doubt(sqs: Any, dead_letter: str, journal: Path, hidden_until: float) -> str:
    """Leave one dead letter as a run killed during its send does: journalled `sending`,
    still on the dead-letter queue. Its body."""
    [message] = sqs.receive_message(
        QueueUrl=dead_letter, MaxNumberOfMessages=1, VisibilityTimeout=0
    )["Messages"]
    Journal(journal)._append([f"sending {message['MessageId']} {hidden_until:.3f}"], durable=True)
    return str(message["Body"])


def run(sqs: Any, journal: Path, *extra: str, project: Path | None = None) -> tuple[int, str]:
    out, err = io.StringIO(), io.StringIO()
    argv = ["dlq", "replay", "--stage", STAGE, "--journal", str(journal), "--poll-seconds", "0"]
    if project is not None:
        argv += ["--project-dir", str(project)]
    status = ops.main([*argv, *extra], ops=StandInOps(MoveTaskStandIn(sqs)), out=out, err=err)
    return status, out.getvalue() + err.getvalue()


def with_table(project: Path) -> Path:
    """The project with DEDUPE_TABLE set for the stage, and the table on moto."""
    config_path = project / ".chalice" / "config.json"
    config = json.loads(config_path.read_text())
    config["stages"][STAGE]["environment_variables"]["DEDUPE_TABLE"] = TABLE
    config_path.write_text(json.dumps(config))
    boto3.client("dynamodb", region_name=REGION).create_table(
        TableName=TABLE,
        KeySchema=[{"AttributeName": "id", "KeyType": "HASH"}],
        AttributeDefinitions=[{"AttributeName": "id", "AttributeType": "S"}],
        BillingMode="PAY_PER_REQUEST",
    )
    return project


def test_without_a_table_the_default_run_replays_the_rest_and_names_the_one_command(
    sqs: Any, queues: Queues, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    fill(sqs, queues.dead_letter)
    doubtful = in_doubt(sqs, queues.dead_letter, journal, time.time() - QUIET - 60)

    status, text = run(sqs, journal)
    assert status == 1, text  # something is left to decide
    assert "not starting an SQS move task" not in text
    assert "replayed 18 messages" in text  # every valid one but the one in doubt
    assert "1 in doubt: a run was stopped during their send" in text
    assert "the stage has no DEDUPE_TABLE, so a copy sent again may be delivered twice" in text
    assert "run the same command with --resend-in-doubt" in text
    moved = everything_on(sqs, queues.events)
    assert len(moved) == 18
    assert doubtful not in moved

    status, text = run(sqs, journal)  # again: not stuck, still one line to act on
    assert status == 1
    assert "replayed 0 messages" in text
    assert "1 in doubt" in text

    status, text = run(sqs, journal, "--resend-in-doubt")
    assert status == 0, text
    assert "1 in doubt, sent again as asked" in text
    assert everything_on(sqs, queues.events) == [doubtful]
    assert not journal.exists()


def test_with_a_table_an_in_doubt_message_found_delivered_is_deleted_not_sent(
    sqs: Any, queues: Queues, tmp_path: Path, project: Path
) -> None:
    journal = tmp_path / "journal"
    fill(sqs, queues.dead_letter)
    doubtful = in_doubt(sqs, queues.dead_letter, journal, time.time())
    event = Event.from_message(doubtful)
    store = DynamoDeliveryStore(boto3.client("dynamodb", region_name=REGION), TABLE, 3600)
    project = with_table(project)
    assert store.record("customer-profiles", [(event.endpoint_id, event.event_id)]) == 0

    status, text = run(sqs, journal, project=project)
    assert status == 0, text
    assert "1 in doubt, found delivered in the dedupe table: deleted, not sent again" in text
    assert doubtful not in everything_on(sqs, queues.events)
    assert not journal.exists()
    assert everything_on(sqs, queues.dead_letter) == ["not json {"]  # left: not an event


def test_with_a_table_an_undelivered_one_is_sent_once_a_landed_copy_had_its_time(
    sqs: Any, queues: Queues, tmp_path: Path, project: Path
) -> None:
    journal = tmp_path / "journal"
    fill(sqs, queues.dead_letter)
    doubtful = in_doubt(sqs, queues.dead_letter, journal, time.time() - QUIET - 60)
    project = with_table(project)

    status, text = run(sqs, journal, project=project)
    assert status == 0, text
    assert "1 in doubt, settled and sent again: the consumer's dedupe table answers" in text
    assert everything_on(sqs, queues.events).count(doubtful) == 1
    assert not journal.exists()


def test_with_a_table_a_recent_one_waits_and_the_report_says_until_when(
    sqs: Any, queues: Queues, tmp_path: Path, project: Path
) -> None:
    journal = tmp_path / "journal"
    fill(sqs, queues.dead_letter)
    hidden_until = time.time()
    doubtful = in_doubt(sqs, queues.dead_letter, journal, hidden_until)
    project = with_table(project)

    status, text = run(sqs, journal, project=project)
    assert status == 1, text
    assert "a copy that landed may still be on the events queue" in text
    ready = time.strftime("%H:%M UTC", time.gmtime(hidden_until + QUIET))
    assert f"a run after {ready} settles them itself" in text
    assert doubtful not in everything_on(sqs, queues.events)
    assert doubtful in everything_on(sqs, queues.dead_letter)


def test_a_move_task_asked_for_by_name_still_refuses_and_names_the_default(
    sqs: Any, queues: Queues, tmp_path: Path
) -> None:
    journal = tmp_path / "journal"
    fill(sqs, queues.dead_letter)
    in_doubt(sqs, queues.dead_letter, journal, time.time())
    status, text = run(sqs, journal, "--method", "move-task")
    assert status == 1
    assert (
        "1 messages in the journal are in doubt (a run was stopped during their send): run"
        ' `make ops ARGS="dlq replay --stage dev"` without --method'
    ) in text


def test_a_body_that_is_no_event_is_sent_again_table_or_not(
    sqs: Any, queues: Queues, tmp_path: Path
) -> None:
    """It was sent once with --include-invalid; no destination can receive it twice (the
    consumer parks it again), so it never stays in doubt."""
    journal = tmp_path / "journal"
    park(sqs, queues.dead_letter, "not json {", "body is not JSON", stage="decode")
    in_doubt(sqs, queues.dead_letter, journal, time.time())
    status, text = run(sqs, journal)
    assert status == 0, text
    assert "1 in doubt, settled and sent again" in text
    assert everything_on(sqs, queues.events) == ["not json {"]
    assert not journal.exists()
