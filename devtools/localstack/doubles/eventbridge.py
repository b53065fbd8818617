"""EventBridge's dry run: the bus on moto's server, with a rule sending everything from the
configured source to an SQS queue there, which is read back.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json

from chalicelib.destinations.eventbridge import EventBridge
from devtools.localstack.doubles import Running, Setup


def start(setup: Setup) -> Running:
    settings = EventBridge.parse(setup.environment)
    bus = settings.bus
    sqs, events = setup.client("sqs"), setup.client("events")
    queue_url = sqs.create_queue(QueueName=f"{bus}-dry-run-target")["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue_url, AttributeNames=["QueueArn"])[
        "Attributes"
    ]["QueueArn"]
    if bus != "default":
        events.create_event_bus(Name=bus)
    events.put_rule(
        Name="pixel-relay-dry-run",
        EventBusName=bus,
        EventPattern=json.dumps({"source": [settings.source]}),
    )
    events.put_targets(
        Rule="pixel-relay-dry-run",
        EventBusName=bus,
        Targets=[{"Id": "dry-run", "Arn": queue_arn}],
    )

    def read_back() -> None:
        # Until the target queue is empty: ten a poll fell behind any real load.
        while messages := sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get(
            "Messages", []
        ):
            for message in messages:
                envelope = json.loads(message["Body"])
                setup.receive_record(envelope["detail"], envelope)
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])

    return Running({"AWS_ENDPOINT_URL_EVENTBRIDGE": setup.moto_url}, read_back=read_back)
