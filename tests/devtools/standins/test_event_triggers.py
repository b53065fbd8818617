"""The stand-in's event trigger evaluation: which triggers an accepted object fires, and
whether the campaign would start (limits per profile, no profile)."""

from __future__ import annotations

from typing import Any

from devtools.standins.event_triggers import EventTriggers, TriggerVerdict

OBJECT_TYPES: dict[str, Any] = {"PixelRelayEvent": {}}


class Clock:
    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def attribute(operator: str, *values: str, field: str = "event_type") -> dict[str, Any]:
    return {"FieldName": field, "ComparisonOperator": operator, "Values": list(values)}


def trigger(*attributes: dict[str, Any], operator: str = "ANY", **extra: Any) -> dict[str, Any]:
    return {
        "ObjectTypeName": "PixelRelayEvent",
        "EventTriggerConditions": [
            {
                "EventTriggerDimensions": [{"ObjectAttributes": list(attributes)}],
                "LogicalOperator": operator,
            }
        ],
        **extra,
    }


def triggers(clock: Clock | None = None, **definitions: dict[str, Any]) -> EventTriggers:
    store = EventTriggers(clock=clock or Clock())
    for name, body in definitions.items():
        store.handle("CreateEventTrigger", name, body, OBJECT_TYPES)
    return store


def started(name: str, profile: str = "p1") -> TriggerVerdict:
    return TriggerVerdict(name, True, profile_id=profile)


def fired(
    store: EventTriggers,
    event_type: str,
    profile: str | None = "p1",
    source_time: float | None = None,
    **source: Any,
) -> list[TriggerVerdict]:
    fields = {"event_type": event_type}
    return store.evaluate(
        "PixelRelayEvent", fields, {"event_type": event_type, **source}, profile, source_time
    )


def test_only_the_trigger_whose_condition_matches_fires() -> None:
    store = triggers(
        purchase=trigger(attribute("EQUAL", "purchase_success")),
        signup=trigger(attribute("EQUAL", "signup")),
        checkout=trigger(attribute("BEGINS_WITH", "checkout_")),
    )
    assert fired(store, "purchase_success") == [started("purchase")]
    assert fired(store, "checkout_step_2") == [started("checkout")]
    assert fired(store, "add_to_cart") == []


def test_an_object_of_another_type_fires_nothing() -> None:
    store = triggers(purchase=trigger(attribute("EQUAL", "purchase_success")))
    assert store.evaluate("OtherType", {"event_type": "purchase_success"}, {}, "p1") == []


def test_logical_operators_and_source_accessors() -> None:
    big = {
        "Source": "_source.metrics.price",
        "ComparisonOperator": "GREATER_THAN",
        "Values": ["100"],
    }
    store = triggers(
        none=trigger(attribute("EQUAL", "page_view"), operator="NONE"),
        big_purchase=trigger(attribute("EQUAL", "purchase_success"), big),
    )
    assert fired(store, "purchase_success", metrics={"price": 120}) == [
        started("big_purchase"),
        started("none"),
    ]
    assert fired(store, "purchase_success", metrics={"price": 20}) == [started("none")]
    assert fired(store, "page_view") == []


def test_a_limit_per_profile_holds_the_campaign_until_the_period_is_over() -> None:
    clock = Clock()
    limits = {"Periods": [{"Unit": "HOURS", "Value": 1, "MaxInvocationsPerProfile": 1}]}
    store = triggers(
        clock, purchase=trigger(attribute("EQUAL", "purchase_success"), EventTriggerLimits=limits)
    )

    assert fired(store, "purchase_success") == [started("purchase")]
    [held] = fired(store, "purchase_success")
    assert (held.would_start, held.reason) == (
        False,
        "limit reached for this profile (1 per 1 HOURS)",
    )
    assert fired(store, "purchase_success", profile="p2") == [started("purchase", "p2")]
    clock.now += 3600
    assert fired(store, "purchase_success") == [started("purchase")]


def test_no_profile_no_campaign_and_unevaluated_operators_say_so() -> None:
    store = triggers(
        purchase=trigger(attribute("EQUAL", "purchase_success")),
        dated=trigger(attribute("BEFORE", "2026-01-01", field="timestamp")),
    )
    assert fired(store, "purchase_success", profile=None) == [
        TriggerVerdict("dated", False, "not evaluated: the stand-in does not evaluate BEFORE"),
        TriggerVerdict("purchase", False, "the object is on no profile"),
    ]


def test_an_event_processed_after_the_expiration_starts_nothing() -> None:
    """EventExpiration (milliseconds), read as the time since the object's source timestamp;
    an object without one cannot be judged late."""
    clock = Clock()
    limits = {"EventExpiration": 600_000}
    store = triggers(
        clock, purchase=trigger(attribute("EQUAL", "purchase_success"), EventTriggerLimits=limits)
    )
    assert fired(store, "purchase_success", source_time=clock.now - 600) == [started("purchase")]
    [late] = fired(store, "purchase_success", source_time=clock.now - 601)
    assert (late.would_start, late.reason) == (
        False,
        "expired: processed 601 s after the event; EventExpiration is 600 s",
    )
    assert fired(store, "purchase_success") == [started("purchase")]
