"""A stand-in for SQS's three message move task calls, which moto 5.2.5 does not implement
(its server answers 500 NotImplementedError): every other SQS call goes to moto, and every
request is checked against botocore's model. Used by the dlq replay tests."""

from __future__ import annotations

import itertools
import time
from typing import Any

from botocore.exceptions import ClientError
from botocore.validate import ParamValidator

from devtools.ops import cli as ops
from tests.devtools.ops.dead_letters import approximate


class MoveTaskStandIn:
    """An SQS client whose three move-task calls behave as SQS documents them (one active
    task per source queue; TaskHandle only while RUNNING); each ListMessageMoveTasks call
    moves up to `per_poll` messages on moto. Everything else goes to moto unchanged."""

    def __init__(self, sqs: Any, per_poll: int = 10) -> None:
        self._sqs = sqs
        self._per_poll = per_poll
        self._handles = itertools.count(1)
        self.tasks: list[dict[str, Any]] = []
        self.started = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sqs, name)

    def _check(self, operation: str, params: dict[str, Any]) -> None:
        shape = self._sqs.meta.service_model.operation_model(operation).input_shape
        report = ParamValidator().validate(params, shape)
        assert not report.has_errors(), report.generate_report()

    def _url(self, arn: str) -> str:
        return str(self._sqs.get_queue_url(QueueName=arn.rsplit(":", 1)[-1])["QueueUrl"])

    def start_message_move_task(self, **params: Any) -> dict[str, Any]:
        self._check("StartMessageMoveTask", params)
        if any(t["Status"] in ("RUNNING", "CANCELLING") for t in self.tasks):
            answer: Any = {
                "Error": {"Code": "UnsupportedOperation", "Message": "a task is running"},
                "ResponseMetadata": {"HTTPStatusCode": 400},
            }
            raise ClientError(answer, "StartMessageMoveTask")
        handle = f"handle-{next(self._handles)}"
        self.tasks.insert(
            0,
            {
                "TaskHandle": handle,
                "Status": "RUNNING",
                "SourceArn": params["SourceArn"],
                "DestinationArn": params["DestinationArn"],
                "ApproximateNumberOfMessagesMoved": 0,
                "ApproximateNumberOfMessagesToMove": approximate(
                    self._sqs, self._url(params["SourceArn"])
                ),
                "StartedTimestamp": int(time.time() * 1000),
            },
        )
        self.started += 1
        return {"TaskHandle": handle}

    def list_message_move_tasks(self, **params: Any) -> dict[str, Any]:
        self._check("ListMessageMoveTasks", params)
        for task in self.tasks:
            if task["Status"] == "CANCELLING":
                task["Status"] = "CANCELLED"
            elif task["Status"] == "RUNNING":
                self._move(task)
            if task["Status"] != "RUNNING":
                task.pop("TaskHandle", None)
        return {"Results": [dict(task) for task in self.tasks[: params.get("MaxResults", 10)]]}

    def _move(self, task: dict[str, Any]) -> None:
        source, destination = self._url(task["SourceArn"]), self._url(task["DestinationArn"])
        messages = self._sqs.receive_message(
            QueueUrl=source, MaxNumberOfMessages=min(self._per_poll, 10), VisibilityTimeout=30
        ).get("Messages", [])
        if not messages:
            task["Status"] = "COMPLETED"
            return
        for message in messages:
            self._sqs.send_message(QueueUrl=destination, MessageBody=message["Body"])
            self._sqs.delete_message(QueueUrl=source, ReceiptHandle=message["ReceiptHandle"])
        task["ApproximateNumberOfMessagesMoved"] += len(messages)

    def cancel_message_move_task(self, **params: Any) -> dict[str, Any]:
        self._check("CancelMessageMoveTask", params)
        task = next(t for t in self.tasks if t.get("TaskHandle") == params["TaskHandle"])
        task["Status"] = "CANCELLING"
        return {"ApproximateNumberOfMessagesMoved": task["ApproximateNumberOfMessagesMoved"]}


class StandInOps(ops.Ops):
    def __init__(self, sqs: Any) -> None:
        super().__init__()
        self._clients["sqs"] = sqs
        self._clients["sqs-single-attempt"] = sqs
