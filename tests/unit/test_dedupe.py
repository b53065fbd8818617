"""The per-destination memory of delivered events: copies are answered, not sent (no I/O)."""

from __future__ import annotations

import json
import tracemalloc
from collections.abc import Sequence

import pytest

from chalicelib.dedupe import (
    MEMORY_BYTES_PER_ENTRY,
    DedupeSettings,
    Deduplicated,
    DynamoDeliveryStore,
    Key,
    RecentDeliveries,
    StoreUnavailableError,
    fingerprint,
)
from chalicelib.delivery import BatchDelivery, QueuedMessage
from chalicelib.env import ConfigError
from chalicelib.events import Event, ProfileUpdate
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict
from tests.factories import FakeQueues, make_event, message_body

PROFILE = ProfileUpdate(user_attributes={"plan": ("gold",)})


class Recorder:
    """A destination that records what it was sent and answers from a script."""

    def __init__(self, outcomes: dict[str, Outcome] | None = None) -> None:
        self.name = "pinpoint"
        self.outcomes = outcomes or {}
        self.calls: list[list[Event]] = []

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        self.calls.append(list(events))
        return [self.outcomes.get(e.event_id, DELIVERED) for e in events]

    @property
    def sent(self) -> list[str]:
        return [e.event_id for call in self.calls for e in call]


class FakeStore:
    def __init__(self, fail_read: bool = False, fail_write: bool = False) -> None:
        self.keys: set[tuple[str, Key]] = set()
        self.fail_read = fail_read
        self.fail_write = fail_write

    def seen(self, destination: str, keys: Sequence[Key], time_left: TimeLeft) -> set[Key]:
        if self.fail_read:
            raise StoreUnavailableError("ProvisionedThroughputExceededException")
        return {k for k in keys if (destination, k) in self.keys}

    def record(self, destination: str, keys: Sequence[Key], time_left: TimeLeft) -> int:
        if self.fail_write:
            return len(keys)
        self.keys.update((destination, k) for k in keys)
        return 0


def metrics(output: str) -> dict[tuple[str, str], float]:
    """(metric, destination) -> value, from the EMF documents printed on stdout."""
    found: dict[tuple[str, str], float] = {}
    for line in output.splitlines():
        if not line.startswith("{"):
            continue
        document = json.loads(line)
        if "_aws" not in document or "destination" not in document:
            continue
        for definition in document["_aws"]["CloudWatchMetrics"][0]["Metrics"]:
            name = definition["Name"]
            value = document[name]
            total = sum(value) if isinstance(value, list) else value
            found[(name, document["destination"])] = total
    return found


def test_a_copy_in_a_later_batch_is_answered_delivered_without_sending(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inner = Recorder()
    wrapper = Deduplicated(inner, RecentDeliveries(100))
    assert wrapper.deliver([make_event(1), make_event(2)]) == [DELIVERED, DELIVERED]
    assert wrapper.deliver([make_event(2), make_event(3)]) == [DELIVERED, DELIVERED]
    assert inner.sent == ["e-1", "e-2", "e-3"]
    assert metrics(capsys.readouterr().out)[("DuplicatesSkipped", "pinpoint")] == 1


def test_two_copies_in_one_batch_are_sent_once_and_both_get_the_outcome() -> None:
    inner = Recorder({"e-1": Outcome(Verdict.RETRY, "throttled")})
    wrapper = Deduplicated(inner, RecentDeliveries(100))
    outcomes = wrapper.deliver([make_event(1), make_event(2), make_event(1), make_event(2)])
    assert inner.sent == ["e-1", "e-2"]
    assert [o.verdict for o in outcomes] == [
        Verdict.RETRY,
        Verdict.DELIVERED,
        Verdict.RETRY,
        Verdict.DELIVERED,
    ]
    # The retried one was not remembered: its next copy is sent.
    wrapper.deliver([make_event(1)])
    assert inner.sent == ["e-1", "e-2", "e-1"]


def test_the_same_event_id_on_another_endpoint_is_another_event() -> None:
    inner = Recorder()
    wrapper = Deduplicated(inner, RecentDeliveries(100))
    wrapper.deliver([make_event(1, endpoint_id="ep-1")])
    wrapper.deliver([make_event(1, endpoint_id="ep-2")])
    assert [(e.endpoint_id, e.event_id) for c in inner.calls for e in c] == [
        ("ep-1", "e-1"),
        ("ep-2", "e-1"),
    ]


@pytest.mark.parametrize("verdict", [Verdict.REJECTED, Verdict.RETRY])
def test_an_event_whose_profile_update_failed_is_not_remembered(verdict: Verdict) -> None:
    """Its copy parked for the profile update must reach the destination when replayed."""
    inner = Recorder({"e-1": Outcome(Verdict.DELIVERED, profile=verdict, profile_reason="x")})
    wrapper = Deduplicated(inner, RecentDeliveries(100))
    wrapper.deliver([make_event(1, profile=PROFILE)])
    inner.outcomes = {}
    assert wrapper.deliver([make_event(1, profile=PROFILE)]) == [DELIVERED]
    assert inner.sent == ["e-1", "e-1"]


def test_of_copies_in_one_batch_the_one_with_the_profile_update_is_sent() -> None:
    inner = Recorder({"e-1": Outcome(Verdict.DELIVERED, profile=Verdict.DELIVERED)})
    wrapper = Deduplicated(inner, RecentDeliveries(100))
    stripped, full = make_event(1), make_event(1, profile=PROFILE)
    outcomes = wrapper.deliver([stripped, full])
    assert inner.calls == [[full]]
    # The stripped copy wrote nothing to a profile, so it gets no profile verdict.
    assert outcomes == [DELIVERED, Outcome(Verdict.DELIVERED, profile=Verdict.DELIVERED)]


def key(number: int) -> bytes:
    return fingerprint("pinpoint", (f"ep-{number}", f"e-{number}"))


def test_memory_keeps_at_least_the_last_capacity_keys_and_at_most_twice_that() -> None:
    memory = RecentDeliveries(3)
    for number in range(20):
        memory.add(key(number))
        assert len(memory) <= 6
        recent = range(max(0, number - 2), number + 1)
        assert all(key(n) in memory for n in recent)
    assert not any(key(n) in memory for n in range(14))  # six or more newer ones: gone


def test_a_key_found_again_is_kept_like_a_new_one() -> None:
    memory = RecentDeliveries(3)
    for number in range(3):
        memory.add(key(number))  # 0, 1, 2: now the old generation
    assert key(0) in memory  # found again: young again
    for number in range(3, 6):
        memory.add(key(number))  # 0, 3, 4 fill the young one; 5 starts the next
    assert key(0) in memory
    assert key(1) not in memory
    assert key(2) not in memory


def test_one_memory_shared_by_two_destinations_keeps_them_apart() -> None:
    memory = RecentDeliveries(100)
    pinpoint, archive = Recorder(), Recorder()
    archive.name = "archive"
    Deduplicated(pinpoint, memory).deliver([make_event(1)])
    Deduplicated(archive, memory).deliver([make_event(1)])
    Deduplicated(pinpoint, memory).deliver([make_event(1)])
    assert pinpoint.sent == ["e-1"]
    assert archive.sent == ["e-1"]


def test_fingerprints_do_not_collide_when_an_id_holds_the_separator() -> None:
    assert fingerprint("d", ("a#b", "c")) != fingerprint("d", ("a", "b#c"))
    assert fingerprint("d", ("a\0b", "c")) != fingerprint("d", ("a", "b\0c"))


def test_memory_of_size_zero_remembers_nothing_and_copies_are_sent() -> None:
    inner = Recorder()
    wrapper = Deduplicated(inner, RecentDeliveries(0))
    wrapper.deliver([make_event(1)])
    wrapper.deliver([make_event(1)])
    assert inner.sent == ["e-1", "e-1"]


def test_the_store_answers_for_another_container() -> None:
    store = FakeStore()
    first = Recorder()
    second = Recorder()
    Deduplicated(first, RecentDeliveries(100), store).deliver([make_event(1)])
    batch = [make_event(1), make_event(2)]
    assert Deduplicated(second, RecentDeliveries(100), store).deliver(batch) == [
        DELIVERED,
        DELIVERED,
    ]
    assert second.sent == ["e-2"]


def test_a_store_that_cannot_be_read_means_sending_anyway_and_is_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    store = FakeStore(fail_read=True)
    store.keys.add(("pinpoint", ("ep-1", "e-1")))
    inner = Recorder()
    assert Deduplicated(inner, RecentDeliveries(100), store).deliver([make_event(1)]) == [DELIVERED]
    assert inner.sent == ["e-1"]
    assert metrics(capsys.readouterr().out)[("DedupeStoreReadFailures", "pinpoint")] == 1


def test_a_store_that_cannot_be_written_is_counted_and_the_memory_still_holds(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inner = Recorder()
    wrapper = Deduplicated(inner, RecentDeliveries(100), FakeStore(fail_write=True))
    wrapper.deliver([make_event(1), make_event(2)])
    wrapper.deliver([make_event(1)])
    assert inner.sent == ["e-1", "e-2"]
    assert metrics(capsys.readouterr().out)[("DedupeStoreWriteFailures", "pinpoint")] == 2


def test_through_batch_delivery_copies_of_one_hit_reach_the_destination_once() -> None:
    """The pixel's slow-SQS path: two messages, one event id; both deleted, one delivery."""
    inner = Recorder()
    queues = FakeQueues()
    consumer = BatchDelivery(
        [Deduplicated(inner, RecentDeliveries(100))],
        queues,
        queues,
        False,
    )
    body = message_body(1)
    first = consumer.settle([QueuedMessage("m-1", "r-1", body), QueuedMessage("m-2", "r-2", body)])
    later = consumer.settle([QueuedMessage("m-3", "r-3", body)])
    assert inner.sent == ["e-1"]
    assert first.delivered == ("m-1", "m-2")
    assert later.delivered == ("m-3",)
    assert queues.parked == []


def test_settings_defaults_and_errors_name_the_variable() -> None:
    assert DedupeSettings.from_env({}) == DedupeSettings(100_000, None, 18 * 86_400)
    assert DedupeSettings.from_env({"DEDUPE_TABLE": "pixel-relay-dedupe"}).table == (
        "pixel-relay-dedupe"
    )
    for variable, value in [
        ("DEDUPE_TABLE", "arn:aws:dynamodb:eu-west-1:1:table/x"),
        ("DEDUPE_TABLE", "ab"),
        ("DEDUPE_TTL_SECONDS", "60"),
        ("DEDUPE_MEMORY_SIZE", "-1"),
        ("DEDUPE_MEMORY_SIZE", "lots"),
    ]:
        with pytest.raises(ConfigError, match=variable):
            DedupeSettings.from_env({variable: value})


@pytest.mark.parametrize(
    ("table", "problem"),
    [
        ("ab", "must be 3-255 characters (botocore's dynamodb model, shape TableName)"),
        ("t" * 256, "must be 3-255 characters (botocore's dynamodb model, shape TableName)"),
        ("a table", "must match [a-zA-Z0-9_.-]+ (botocore's dynamodb model, shape TableName)"),
    ],
)
def test_a_dedupe_table_is_held_to_the_shape_of_a_tables_name_in_the_model(
    table: str, problem: str
) -> None:
    """DynamoDB's requests take a table's name or ARN now (shape TableArn, 1-1024): the
    table pixel-relay creates and grants is named, so its name's own shape decides."""
    with pytest.raises(ConfigError) as caught:
        DedupeSettings.from_env({"DEDUPE_TABLE": table})
    assert str(caught.value) == f"DEDUPE_TABLE: {problem}"


def test_the_memorys_python_objects_stay_under_its_bound_however_many_ids_it_is_fed() -> None:
    """The bound DEDUPE_MEMORY_SIZE is checked with (MEMORY_BYTES_PER_ENTRY) comes from
    `make bench` (peak RSS, bench/dedupe_memory.py); tracemalloc, which sees Python's
    allocations without the allocator's slack, must stay under it too, fed new ids (an
    attacker's pattern) for six turns of its capacity."""
    count = 50_000
    keys = [key(number) for number in range(7 * count)]
    tracemalloc.start()
    memory = RecentDeliveries(count)
    for fresh in keys:
        memory.add(fresh)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    held = sum(len(k) + 33 for k in keys[-2 * count :]) / count  # the digests it may hold
    print(f"RecentDeliveries: peak {peak / count:.0f} bytes a configured entry")
    assert count <= len(memory) <= 2 * count
    assert peak / count + held <= MEMORY_BYTES_PER_ENTRY


def test_a_memory_the_consumers_lambda_memory_cannot_hold_is_refused_naming_both() -> None:
    """In Lambda, AWS_LAMBDA_FUNCTION_MEMORY_SIZE is the function's memory (deploy checks
    .chalice/config.json's lambda_memory_size before)."""
    lambda_256 = {"AWS_LAMBDA_FUNCTION_MEMORY_SIZE": "256"}
    assert DedupeSettings.from_env(lambda_256).memory_size == 100_000
    with pytest.raises(ConfigError) as refused:
        DedupeSettings.from_env({**lambda_256, "DEDUPE_MEMORY_SIZE": "2000000"})
    message = str(refused.value)
    assert message.startswith("DEDUPE_MEMORY_SIZE: 2,000,000 remembered deliveries take up to")
    assert "256 MB (AWS_LAMBDA_FUNCTION_MEMORY_SIZE)" in message
    fitting = int(message.split("lower DEDUPE_MEMORY_SIZE to ")[1].split(" ")[0].replace(",", ""))
    assert fitting * MEMORY_BYTES_PER_ENTRY <= 128 * 2**20
    assert DedupeSettings.from_env({**lambda_256, "DEDUPE_MEMORY_SIZE": str(fitting)})
    with pytest.raises(ConfigError):
        DedupeSettings.from_env({**lambda_256, "DEDUPE_MEMORY_SIZE": str(fitting + 1)})


def test_the_table_is_not_called_when_the_batch_needs_the_time_left() -> None:
    class Untouchable:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"{name} called with too little time left")

    store = DynamoDeliveryStore(Untouchable(), "t", ttl_seconds=3600)  # type: ignore[arg-type]
    with pytest.raises(StoreUnavailableError, match="out of time"):
        store.seen("pinpoint", [("ep-1", "e-1")], lambda: 14_000)
    assert store.record("pinpoint", [("ep-1", "e-1"), ("ep-1", "e-2")], lambda: 14_000) == 2
