"""The consumer side: PutEvents calls per 1,000 events, and the CPU cost of a batch.

Messages are made by the pixel itself (hits through the app, SQS answered in-process), so
they are exactly what the consumer reads in production.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

import botocore.session
from botocore.serialize import create_serializer

from bench.environment import quiet_stdout
from bench.fakes import aws_in_process
from bench.hits import answered_gif, proxy_event, sample_queries

QUEUE_ARN = "arn:aws:sqs:us-east-1:000000000000:pixel-relay-dev-events"


def pixel_messages(count: int, seed: int = 11) -> list[str]:
    """`count` SQS message bodies, as the app's pixel writes them."""
    from app import app

    with quiet_stdout(), aws_in_process() as aws:
        for query in sample_queries(count, seed=seed):
            answer = app(proxy_event(query), None)
            if not answered_gif(answer):
                raise RuntimeError(f"a hit was refused: {answer.get('statusCode')} {query}")
    return list(aws.sqs.bodies)


def sqs_event(bodies: Sequence[str]) -> dict[str, Any]:
    """The event Lambda's SQS event source hands the consumer (distinct message ids)."""
    return {
        "Records": [
            {
                "messageId": str(uuid.uuid4()),
                "receiptHandle": f"handle-{index}",
                "body": body,
                "attributes": {"ApproximateReceiveCount": "1"},
                "messageAttributes": {},
                "md5OfBody": "",
                "eventSource": "aws:sqs",
                "eventSourceARN": QUEUE_ARN,
                "awsRegion": "us-east-1",
            }
            for index, body in enumerate(bodies)
        ]
    }


def downstream_calls(bodies: Sequence[str], batch_size: int) -> dict[str, Any]:
    """PutEvents requests per 1,000 events through the real handler (`app.deliver`), with
    Pinpoint answered in-process by the real botocore client."""
    from app import deliver

    with quiet_stdout(), aws_in_process() as aws:
        answers = [
            deliver(sqs_event(bodies[start : start + batch_size]), None)
            for start in range(0, len(bodies), batch_size)
        ]
    failures = sum(len(answer.get("batchItemFailures", [])) for answer in answers)
    if failures or aws.pinpoint.events != len(bodies):
        raise RuntimeError(
            f"{aws.pinpoint.events} of {len(bodies)} events reached Pinpoint, "
            f"{failures} reported as failed"
        )
    return {
        "per_1000_events": round(aws.pinpoint.calls * 1000 / len(bodies), 2),
        "put_events_calls": aws.pinpoint.calls,
        "events": len(bodies),
        "batches": len(answers),
        "batch_size": batch_size,
        "consumer_sqs_calls": sum(aws.sqs.calls.values()),
        "original_design_per_1000_events": 1000,
    }


class _AnsweringPinpoint:
    """A Pinpoint client stand-in that records each request and answers every event 202.

    Answers are built on the first pass and replayed afterwards, so the timed passes spend
    nothing in the fake.
    """

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self._answers: list[dict[str, Any]] = []
        self._next = 0
        self.recording = True

    def rewind(self) -> None:
        self._next = 0

    def put_events(self, ApplicationId: str, EventsRequest: dict[str, Any]) -> dict[str, Any]:  # noqa: N803
        if self.recording:
            self.requests.append(EventsRequest)
            self._answers.append(_accept_all(EventsRequest))
        answer = self._answers[self._next]
        self._next += 1
        return answer


def _accept_all(request: dict[str, Any]) -> dict[str, Any]:
    accepted = {"StatusCode": 202, "Message": "Accepted"}
    return {
        "EventsResponse": {
            "Results": {
                endpoint_id: {
                    "EndpointItemResponse": dict(accepted),
                    "EventsItemResponse": {event_id: dict(accepted) for event_id in item["Events"]},
                }
                for endpoint_id, item in request["BatchItem"].items()
            }
        }
    }


def _cpu_seconds(work: Callable[[], object]) -> float:
    started = time.process_time()
    work()
    return time.process_time() - started


def consumer_cost(bodies: Sequence[str], repeats: int) -> dict[str, Any]:
    """CPU time to turn one batch of messages into PutEvents requests and read the results,
    against botocore's own rest-json serialization of the same requests."""
    from chalicelib.destinations.pinpoint import PinpointDestination
    from chalicelib.events import Event

    application_id = "dev-application"
    client = _AnsweringPinpoint()
    destination = PinpointDestination(client, application_id)  # type: ignore[arg-type]

    def ours() -> None:
        client.rewind()
        events = [Event.from_message(body) for body in bodies]
        outcomes = destination.deliver(events)
        if len(outcomes) != len(bodies):
            raise RuntimeError("the destination lost events")

    with quiet_stdout():
        ours()  # records the requests and their answers
        client.recording = False
        operation = (
            botocore.session.get_session()
            .get_service_model("pinpoint")
            .operation_model("PutEvents")
        )
        serializer = create_serializer("rest-json", include_validation=False)
        parameters = [
            {"ApplicationId": application_id, "EventsRequest": request}
            for request in client.requests
        ]

        def botocores() -> None:
            for params in parameters:
                serializer.serialize_to_request(params, operation)

        botocores()
        ours_s: list[float] = []
        theirs_s: list[float] = []
        for _ in range(repeats):
            ours_s.append(_cpu_seconds(ours))
            theirs_s.append(_cpu_seconds(botocores))
    ours_ms = statistics.median(ours_s) * 1000
    theirs_ms = statistics.median(theirs_s) * 1000
    return {
        "ratio": round(ours_ms / theirs_ms, 3),
        "ours_cpu_ms": round(ours_ms, 3),
        "botocore_serialize_cpu_ms": round(theirs_ms, 3),
        "messages": len(bodies),
        "requests": len(client.requests),
        "repeats": repeats,
    }
