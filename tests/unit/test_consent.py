"""Consent at delivery: CONSENT_REQUIRED, CONSENT_WHEN_UNKNOWN and the destination wrapper."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence

import pytest

from chalicelib import runtime
from chalicelib.consent import ConsentFiltered, ConsentSettings, with_consent
from chalicelib.delivery import BatchDelivery, QueuedMessage
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict
from tests.factories import FakeQueues, make_event

GRANTED = {"ad_user_data": "granted", "ad_personalization": "granted"}
REQUIRED = "customer-profiles=ad_user_data+ad_personalization,pinpoint=analytics_storage"


class Recorder:
    """A destination that records what it was sent and answers from a script."""

    def __init__(self, name: str = "customer-profiles", retry: frozenset[str] = frozenset()):
        self.name = name
        self.retry = retry
        self.sent: list[str] = []

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        self.sent.extend(e.event_id for e in events)
        return [
            Outcome(Verdict.RETRY, "throttled") if e.event_id in self.retry else DELIVERED
            for e in events
        ]


def withheld_metrics(output: str) -> dict[str, float]:
    """ConsentWithheld per destination, from the EMF documents printed on stdout."""
    found: dict[str, float] = {}
    for line in output.splitlines():
        if line.startswith("{") and '"ConsentWithheld"' in line:
            document = json.loads(line)
            value = document["ConsentWithheld"]
            total = sum(value) if isinstance(value, list) else value
            found[document["destination"]] = found.get(document["destination"], 0) + total
    return found


# Settings -----------------------------------------------------------------------------------


def test_settings_read_per_destination_types_and_default_to_denied_when_unknown() -> None:
    settings = ConsentSettings.from_env({"CONSENT_REQUIRED": REQUIRED})
    assert settings.required == {
        "customer-profiles": frozenset({"ad_user_data", "ad_personalization"}),
        "pinpoint": frozenset({"analytics_storage"}),
    }
    assert settings.unknown_granted is False
    assert ConsentSettings.from_env({}).required == {}
    assert ConsentSettings.from_env({"CONSENT_WHEN_UNKNOWN": "granted"}).unknown_granted


@pytest.mark.parametrize(
    ("variable", "value", "problem"),
    [
        ("CONSENT_REQUIRED", "customer-profiles", "write destination=type+type pairs"),
        ("CONSENT_REQUIRED", "=ad_storage", "write destination=type+type pairs"),
        ("CONSENT_REQUIRED", "s3=ad_storage", "unknown destination 's3'; known: customer-profiles"),
        ("CONSENT_REQUIRED", "pinpoint=cookies", "unknown consent type 'cookies' for pinpoint"),
        ("CONSENT_REQUIRED", "pinpoint=ad_storage+", "unknown consent type '' for pinpoint"),
        ("CONSENT_REQUIRED", "pinpoint=ad_storage,pinpoint=ad_user_data", "names pinpoint twice"),
        ("CONSENT_WHEN_UNKNOWN", "maybe", "must be denied or granted"),
    ],
)
def test_a_wrong_setting_fails_naming_the_variable(variable: str, value: str, problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        ConsentSettings.from_env({variable: value})
    assert str(caught.value).startswith(f"{variable}: {problem}")


def test_an_event_needs_every_required_type_granted() -> None:
    settings = ConsentSettings.from_env({"CONSENT_REQUIRED": REQUIRED})
    assert settings.permits("customer-profiles", make_event(consent=GRANTED))
    assert not settings.permits(
        "customer-profiles", make_event(consent={**GRANTED, "ad_personalization": "denied"})
    )
    assert settings.permits("unrequired", make_event(consent={"ad_storage": "denied"}))


def test_an_event_without_a_state_for_a_type_is_read_by_consent_when_unknown() -> None:
    partial = make_event(consent={"ad_user_data": "granted"})
    none = make_event()
    denied = ConsentSettings.from_env({"CONSENT_REQUIRED": REQUIRED})
    granted = ConsentSettings.from_env(
        {"CONSENT_REQUIRED": REQUIRED, "CONSENT_WHEN_UNKNOWN": "granted"}
    )
    assert not denied.permits("customer-profiles", partial)
    assert not denied.permits("customer-profiles", none)
    assert granted.permits("customer-profiles", partial)
    assert granted.permits("customer-profiles", none)
    # Known and denied stays denied whatever the setting says of unknown types.
    assert not granted.permits("pinpoint", make_event(consent={"analytics_storage": "denied"}))


# The wrapper -------------------------------------------------------------------------------------


def test_events_without_consent_are_not_sent_and_settle_as_done_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    inner = Recorder()
    wrapper = ConsentFiltered(inner, ConsentSettings.from_env({"CONSENT_REQUIRED": REQUIRED}))
    outcomes = wrapper.deliver(
        [make_event(1, consent=GRANTED), make_event(2), make_event(3, consent=GRANTED)]
    )
    assert inner.sent == ["e-1", "e-3"]
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 3
    assert outcomes[1].reason == "withheld: consent not granted"
    assert withheld_metrics(capsys.readouterr().out) == {"customer-profiles": 1}


def test_a_destination_without_a_requirement_is_not_wrapped() -> None:
    settings = ConsentSettings.from_env({"CONSENT_REQUIRED": "pinpoint=analytics_storage"})
    plain = Recorder("unrequired")
    assert with_consent(plain, settings) is plain
    assert isinstance(with_consent(Recorder("pinpoint"), settings), ConsentFiltered)


def test_a_withheld_event_is_neither_parked_nor_retried_while_another_destination_retries() -> None:
    profiles = Recorder("customer-profiles")
    pinpoint = Recorder("pinpoint", retry=frozenset({"e-1"}))
    settings = ConsentSettings.from_env({"CONSENT_REQUIRED": REQUIRED})
    queues = FakeQueues()
    consumer = BatchDelivery(
        [with_consent(profiles, settings), with_consent(pinpoint, settings)],
        queues,
        queues,
        False,
    )
    analytics_only = {"analytics_storage": "granted"}
    report = consumer.settle(
        [
            QueuedMessage("m-1", "r-1", make_event(1, consent=analytics_only).to_message()),
            QueuedMessage("m-2", "r-2", make_event(2).to_message()),
        ]
    )
    assert profiles.sent == []
    assert pinpoint.sent == ["e-1"]
    assert queues.parked == []
    # e-1 owes Pinpoint only: the copy goes back for it alone; e-2 is done everywhere.
    assert [(e.event_id, e.destinations) for e in queues.requeued] == [("e-1", ("pinpoint",))]
    assert report.delivered == ("m-2",)


@pytest.fixture
def consent_stage(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DESTINATIONS", "customer-profiles,pinpoint")
    monkeypatch.setenv("CONSENT_REQUIRED", REQUIRED)
    runtime.reset()
    yield
    runtime.reset()


def test_the_consumer_wires_the_filter_around_each_destination_that_requires_it(
    consent_stage: None,
) -> None:
    consumer = runtime.batch_delivery()
    names = {d.name: type(d).__name__ for d in consumer._destinations}
    assert names == {"customer-profiles": "ConsentFiltered", "pinpoint": "ConsentFiltered"}


def test_a_wrong_consent_setting_stops_the_stage_at_its_configuration_check(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CONSENT_REQUIRED", "customer-profiles=cookies")
    runtime.reset()
    with pytest.raises(ConfigError, match=r"^CONSENT_REQUIRED: unknown consent type 'cookies'"):
        runtime.check_configuration()
