"""Settling a batch: what is deleted, parked, requeued or retried, with fakes at each seam."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import pytest

from chalicelib.delivery import BatchDelivery, BatchIncompleteError, QueuedMessage
from chalicelib.events import Event, ProfileUpdate
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict
from chalicelib.settlement import (
    SETTLE_MARGIN_MS,
    SqsCallLimits,
    settlement_problem,
)
from tests.factories import FakeQueues, message_body, queued_message

PROFILE = ProfileUpdate(user_attributes={"plan": ("gold",)})


class ScriptedDestination:
    def __init__(self, outcomes: dict[str, Outcome], name: str = "pinpoint") -> None:
        self.name = name
        self.outcomes = outcomes
        self.time_left: TimeLeft = None
        self.received: list[str] = []

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        self.time_left = time_left
        self.received.extend(e.event_id for e in events)
        return [self.outcomes.get(e.event_id, DELIVERED) for e in events]


def delivery(
    outcomes: dict[str, Outcome], queues: FakeQueues, report: bool = False
) -> BatchDelivery:
    return BatchDelivery([ScriptedDestination(outcomes)], queues, queues, report)


def test_all_delivered_returns_no_failures_and_deletes_nothing_itself() -> None:
    queues = FakeQueues()
    answer = delivery({}, queues).handle([queued_message(1), queued_message(2)])
    assert answer == {"batchItemFailures": []}
    assert queues.deleted == []


def test_safe_mode_deletes_finished_messages_then_raises() -> None:
    queues = FakeQueues()
    outcomes = {"e-2": Outcome(Verdict.RETRY, "503 busy")}
    with pytest.raises(BatchIncompleteError, match="1 of 3 messages will be retried"):
        delivery(outcomes, queues).handle([queued_message(1), queued_message(2), queued_message(3)])
    assert queues.deleted == ["m-1", "m-3"]


def test_report_mode_returns_the_failures_and_deletes_nothing() -> None:
    queues = FakeQueues()
    outcomes = {"e-2": Outcome(Verdict.RETRY, "503 busy")}
    answer = delivery(outcomes, queues, report=True).handle([queued_message(1), queued_message(2)])
    assert answer == {"batchItemFailures": [{"itemIdentifier": "m-2"}]}
    assert queues.deleted == []


def test_recorded_event_whose_profile_failed_is_finished_and_the_profile_parked() -> None:
    queues = FakeQueues()
    outcomes = {"e-1": Outcome(Verdict.DELIVERED, "", Verdict.RETRY, "endpoint update: 500 x")}
    report = delivery(outcomes, queues).settle([queued_message(1, profile=PROFILE)])
    assert report.delivered == ("m-1",)
    assert report.retry == ()
    [letter] = queues.parked
    assert (letter.stage, letter.reason) == ("pinpoint:profile", "endpoint update: 500 x")
    assert report.profiles_parked == 1


def test_event_retried_after_its_profile_landed_goes_back_without_the_profile() -> None:
    queues = FakeQueues()
    outcomes = {"e-1": Outcome(Verdict.RETRY, "429 slow", Verdict.DELIVERED)}
    report = delivery(outcomes, queues).settle([queued_message(1, profile=PROFILE)])
    assert report.retry == ()  # the original is finished...
    [copy] = queues.requeued  # ...and its event, without the profile, is queued again
    assert copy.event_id == "e-1"
    assert copy.profile.is_empty()


def test_a_failed_requeue_retries_the_original() -> None:
    queues = FakeQueues(refuse_requeue=True)
    outcomes = {"e-1": Outcome(Verdict.RETRY, "429 slow", Verdict.DELIVERED)}
    assert delivery(outcomes, queues).settle([queued_message(1, profile=PROFILE)]).retry == ("m-1",)


def test_rejections_that_cannot_be_parked_are_retried() -> None:
    queues = FakeQueues(refuse_park=True)
    outcomes = {"e-1": Outcome(Verdict.REJECTED, "400 bad")}
    report = delivery(outcomes, queues).settle([queued_message(1), queued_message(2)])
    assert report.retry == ("m-1",)
    assert report.delivered == ("m-2",)


@pytest.mark.parametrize(
    "body",
    [
        '{"version": 1, "metrics": {"m": ' + "9" * 400 + "}}",
        "[" * 100_000 + "]" * 100_000,
        '{"version": true}',
    ],
)
def test_unreadable_bodies_are_parked_not_raised(body: str) -> None:
    queues = FakeQueues()
    poison = QueuedMessage("m-x", "r-x", body)
    report = delivery({}, queues).settle([queued_message(1), poison])
    assert report.delivered == ("m-1",)
    assert report.parked == ("m-x",)
    assert queues.parked[0].stage == "decode"


def test_lambda_time_left_reaches_the_destination() -> None:
    queues = FakeQueues()
    destination = ScriptedDestination({})
    BatchDelivery([destination], queues, queues, False).settle([queued_message(1)], lambda: 1234)
    assert destination.time_left is not None
    assert destination.time_left() == 1234


# Fan-out ------------------------------------------------------------------------------------


def fan_out(
    pinpoint: dict[str, Outcome], archive: dict[str, Outcome], queues: FakeQueues
) -> tuple[BatchDelivery, ScriptedDestination, ScriptedDestination]:
    first = ScriptedDestination(pinpoint, "pinpoint")
    second = ScriptedDestination(archive, "archive")
    return BatchDelivery([first, second], queues, queues, False), first, second


def test_a_failed_destination_gets_a_copy_and_the_healthy_one_nothing_more() -> None:
    queues = FakeQueues()
    delivery, _, _ = fan_out({}, {"e-1": Outcome(Verdict.RETRY, "500")}, queues)
    report = delivery.settle([queued_message(1)])
    assert report.retry == ()  # the original is finished...
    [copy] = queues.requeued  # ...and a copy owed to archive alone goes back
    assert copy.destinations == ("archive",)
    assert copy.event_id == "e-1"

    # The copy comes back: only archive sees it.
    queues.requeued.clear()
    delivery, pinpoint, archive = fan_out({}, {}, queues)
    body = copy.to_message()
    assert delivery.settle([QueuedMessage("m-2", "r-2", body)]).delivered == ("m-2",)
    assert (pinpoint.received, archive.received) == ([], ["e-1"])


def test_failing_everywhere_retries_the_original_as_it_is() -> None:
    queues = FakeQueues()
    busy = {"e-1": Outcome(Verdict.RETRY, "500")}
    delivery, _, _ = fan_out(busy, busy, queues)
    assert delivery.settle([queued_message(1)]).retry == ("m-1",)
    assert queues.requeued == []


def test_a_rejection_is_parked_for_its_destination_only() -> None:
    queues = FakeQueues()
    delivery, _, _ = fan_out({"e-1": Outcome(Verdict.REJECTED, "400 bad")}, {}, queues)
    report = delivery.settle([queued_message(1)])
    assert report.retry == ()
    [letter] = queues.parked
    assert letter.stage == "pinpoint"
    assert Event.from_message(letter.body).destinations == ("pinpoint",)


def test_a_message_for_a_destination_no_longer_configured_is_parked() -> None:
    queues = FakeQueues()
    delivery, _, _ = fan_out({}, {}, queues)
    event = Event.from_message(queued_message(1).body)
    orphan = QueuedMessage("m-9", "r-9", replace(event, destinations=("webhook",)).to_message())
    assert delivery.settle([orphan]).parked == ("m-9",)
    assert queues.parked[0].reason == "no configured destination among webhook"


def test_the_part_owed_to_a_removed_destination_is_parked_not_dropped() -> None:
    queues = FakeQueues()
    delivery, _, archive = fan_out({}, {}, queues)
    event = Event.from_message(queued_message(1).body)
    both = replace(event, destinations=("webhook", "archive"))
    report = delivery.settle([QueuedMessage("m-7", "r-7", both.to_message())])
    assert archive.received == ["e-1"]
    [letter] = queues.parked
    assert (letter.stage, Event.from_message(letter.body).destinations) == (
        "routing",
        ("webhook",),
    )
    assert report.retry == ()


# The second wall: a destination's failure is its events' retry, never the batch's ----------


class RaisingDestination(ScriptedDestination):
    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        self.received.extend(e.event_id for e in events)
        raise ValueError("a bug in one destination")


class MiscountingDestination(ScriptedDestination):
    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        return super().deliver(events, time_left)[:-1]


@pytest.mark.parametrize("broken", [RaisingDestination, MiscountingDestination])
def test_a_destination_that_fails_costs_its_events_a_retry_there_only(
    broken: type[ScriptedDestination],
) -> None:
    queues = FakeQueues()
    healthy = ScriptedDestination({}, "pinpoint")
    faulty = broken({}, "webhook")
    consumer = BatchDelivery([healthy, faulty], queues, queues, False)
    report = consumer.settle([queued_message(1), queued_message(2)])
    assert report.retry == ()  # the originals are finished at pinpoint...
    assert healthy.received == ["e-1", "e-2"]
    # ...and copies owed to webhook alone go back, with nothing else about them changed.
    assert [(c.event_id, c.destinations) for c in queues.requeued] == [
        ("e-1", ("webhook",)),
        ("e-2", ("webhook",)),
    ]
    assert queues.parked == []


def test_with_one_destination_that_raises_the_batch_is_retried_not_failed() -> None:
    queues = FakeQueues()
    consumer = BatchDelivery([RaisingDestination({})], queues, queues, True)
    assert consumer.handle([queued_message(1)]) == {
        "batchItemFailures": [{"itemIdentifier": "m-1"}]
    }


def test_a_destinations_traceback_is_logged_without_its_exceptions_message(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An exception's text may quote what it met (here an endpoint id): the log line has
    the error's type and where it was raised, never its message (docs/operations.md#logs)."""

    class Leaking(ScriptedDestination):
        def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
            raise ValueError(f"unexpected endpoint {events[0].endpoint_id}")

    queues = FakeQueues()
    BatchDelivery([Leaking({})], queues, queues, True).handle(
        [queued_message(1, endpoint_id="ep-victim")]
    )
    [failed] = [r for r in caplog.records if r.getMessage() == "destination failed"]
    assert failed.__dict__["error"] == "ValueError"
    assert "in deliver" in failed.__dict__["traceback"]
    assert failed.exc_info is None  # a formatted exception would carry its message
    everything = [str(value) for record in caplog.records for value in record.__dict__.values()]
    assert not [text for text in everything if "ep-victim" in text]


# Two messages for one event in a batch ------------------------------------------------------


def test_a_requeued_copy_meeting_its_original_is_delivered_once_and_both_finish() -> None:
    queues = FakeQueues()
    original = Event.from_message(queued_message(1, profile=PROFILE).body)
    copy = replace(original, destinations=("pinpoint", "archive"), profile=ProfileUpdate())
    consumer, pinpoint, archive = fan_out({}, {}, queues)
    report = consumer.settle(
        [queued_message(1, profile=PROFILE), QueuedMessage("m-copy", "r-copy", copy.to_message())]
    )
    assert (pinpoint.received, archive.received) == (["e-1"], ["e-1"])
    assert sorted(report.delivered) == ["m-1", "m-copy"]
    assert (queues.parked, queues.requeued) == ([], [])


def test_the_stripped_copy_is_what_is_sent_so_a_landed_update_is_not_written_again() -> None:
    queues = FakeQueues()
    seen: list[Event] = []

    class Recording(ScriptedDestination):
        def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
            seen.extend(events)
            return [Outcome(Verdict.DELIVERED, "", Verdict.DELIVERED)] * len(events)

    original = Event.from_message(queued_message(1, profile=PROFILE).body)
    copy = replace(original, destinations=("pinpoint",), profile=ProfileUpdate())
    consumer = BatchDelivery([Recording({})], queues, queues, False)
    report = consumer.settle(
        [queued_message(1, profile=PROFILE), QueuedMessage("m-copy", "r-copy", copy.to_message())]
    )
    assert [e.profile.is_empty() for e in seen] == [True]
    assert sorted(report.delivered) == ["m-1", "m-copy"]


def test_two_hits_with_one_id_but_different_updates_both_reach_the_destination() -> None:
    queues = FakeQueues()
    destination = ScriptedDestination({})
    consumer = BatchDelivery([destination], queues, queues, False)
    consumer.settle(
        [queued_message(1, profile=PROFILE), QueuedMessage("m-b", "r-b", message_body(1))]
    )
    assert destination.received == ["e-1", "e-1"]  # the destination judges (pinpoint rejects)


# The settlement reserve ---------------------------------------------------------------------


def test_destinations_get_the_time_left_minus_the_settlement_reserve() -> None:
    queues = FakeQueues()
    limits = SqsCallLimits(connect_timeout_s=1, read_timeout_s=3, attempts=2, workers=20)
    first, second = ScriptedDestination({}, "pinpoint"), ScriptedDestination({}, "archive")
    consumer = BatchDelivery([first, second], queues, queues, False, limits)
    consumer.settle([queued_message(i) for i in range(100)], lambda: 60_000)
    assert first.time_left is not None
    assert second.time_left is not None
    # Before pinpoint: up to 200 letters or copies (20 calls, 1 wave) and 100 deletes (1 wave).
    assert first.time_left() == 60_000 - 2 * limits.call_ms - SETTLE_MARGIN_MS
    # Pinpoint answered clean: archive's share of letters still fits one wave.
    assert second.time_left() == 60_000 - 2 * limits.call_ms - SETTLE_MARGIN_MS
    assert limits.call_ms == 9_000  # 2 x (1 s + 3 s) and at most 1 s of backoff


def test_a_clean_destination_gives_back_its_part_of_the_reserve() -> None:
    queues = FakeQueues()
    limits = SqsCallLimits(workers=1)
    first, second = ScriptedDestination({}, "pinpoint"), ScriptedDestination({}, "archive")
    consumer = BatchDelivery([first, second], queues, queues, True, limits)
    consumer.settle([queued_message(i) for i in range(10)], lambda: 100_000)
    assert first.time_left is not None
    assert second.time_left is not None
    assert first.time_left() == 100_000 - 2 * limits.call_ms - SETTLE_MARGIN_MS
    assert second.time_left() == 100_000 - 1 * limits.call_ms - SETTLE_MARGIN_MS


def test_a_batch_of_1000_needs_a_consumer_timeout_of_at_least_139_seconds() -> None:
    """The figure, worked out by hand from SQS's limits and the consumer's SQS client, not
    from the function under test. BATCH_SIZE=1000, one destination, the default mapping
    (the consumer deletes what it finished), DELIVERY_TIMEOUT_SECONDS=10:

    - one SQS call at worst: 2 attempts x (1 s to connect + 3 s to read) + 1 s of backoff
      = 9 s; 32 calls run at once (one round);
    - sends: a dead letter or a copy per message and destination, plus one routing letter
      per message: 1000 x (1 + 1) = 2000 entries, ten to a SendMessageBatch = 200 calls,
      ceil(200 / 32) = 7 rounds;
    - deletes: 1000 messages, ten to a DeleteMessageBatch = 100 calls, ceil(100 / 32) =
      4 rounds, after the sends;
    - reserve: (7 + 4) rounds x 9 s + 1 s of margin = 100 s;
    - one destination call: 3 attempts x (2 s to connect + 10 s to read) + 3 s = 39 s;
    - in all 100 s + 39 s = 139 s. (Without the deletes it would be 64 + 39 = 103 s.)"""
    needs = settlement_problem(1000, 1, False, 10, 138)
    assert needs is not None
    assert "needs a consumer timeout of at least 139 s" in needs
    assert "settling the batch with SQS may take 100 s" in needs
    assert settlement_problem(1000, 1, False, 10, 139) is None
    # Lambda deletes the batch itself (ReportBatchItemFailures): 7 rounds, 64 + 39 = 103 s.
    assert settlement_problem(1000, 1, True, 10, 102) is not None
    assert settlement_problem(1000, 1, True, 10, 103) is None


def test_a_batch_size_whose_settlement_cannot_fit_is_refused_naming_the_settings() -> None:
    assert settlement_problem(100, 1, False, 10, 60) is None
    problem = settlement_problem(1000, 1, False, 10, 60)
    assert problem is not None
    assert "BATCH_SIZE=1000" in problem
    assert "lambda_timeout is 60 s" in problem
    assert "DELIVERY_TIMEOUT_SECONDS=10" in problem
    fitting = int(problem.split("lower BATCH_SIZE to ")[1].split(" ")[0])
    assert settlement_problem(fitting, 1, False, 10, 60) is None
    assert settlement_problem(fitting + 1, 1, False, 10, 60) is not None
