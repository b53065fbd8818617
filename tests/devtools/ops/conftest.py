"""Fixtures for the ops tests."""

from __future__ import annotations

from typing import Any

import pytest

from tests.devtools.ops.dead_letters import SPEC, Queues


@pytest.fixture
def queues(sqs: Any) -> Queues:
    """The dev stage's events queue and dead-letter queue, empty, on moto."""
    dead_letter = sqs.create_queue(QueueName=SPEC.dead_letter_queue)["QueueUrl"]
    events = sqs.create_queue(QueueName=SPEC.events_queue)["QueueUrl"]
    return Queues(events, dead_letter)
