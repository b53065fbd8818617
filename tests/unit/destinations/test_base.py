"""The destination interface's own behaviour: settings read from their shape, a refused
request halved down to the item at fault, and the erasure hook's default."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from chalicelib.destinations.base import (
    Destination,
    RequestRefusedError,
    Setting,
    Visitor,
    send_halving,
)
from chalicelib.env import ConfigError
from chalicelib.events import Event
from chalicelib.outcomes import DELIVERED, Outcome, TimeLeft, Verdict

DOMAIN = Setting(
    "PROFILES_DOMAIN",
    "a domain",
    model=("customer-profiles", "BatchPutProfileObject", "DomainName"),
)


def test_a_setting_reads_its_value_checked_against_its_model() -> None:
    assert DOMAIN.read({"PROFILES_DOMAIN": " shop "}) == "shop"
    with pytest.raises(ConfigError, match="PROFILES_DOMAIN: must match"):
        DOMAIN.read({"PROFILES_DOMAIN": "a shop"})
    with pytest.raises(ConfigError, match="PROFILES_DOMAIN: is required"):
        DOMAIN.read({})


def test_a_setting_without_a_model_takes_its_default_or_is_required() -> None:
    optional = Setting("SOURCE", "a source", default="pixel-relay")
    required = Setting("URL", "an endpoint")
    assert optional.read({}) == "pixel-relay"
    assert optional.read({"SOURCE": " shop "}) == "shop"
    with pytest.raises(ConfigError, match="URL: is required"):
        required.read({"URL": "  "})


def test_a_refused_request_is_halved_until_the_item_at_fault_stands_alone() -> None:
    calls: list[list[int]] = []

    def send(items: Sequence[int]) -> list[Outcome]:
        calls.append(list(items))
        if 5 in items:
            raise RequestRefusedError(f"item 5 refused among {len(items)}")
        return [DELIVERED] * len(items)

    outcomes = send_halving(list(range(8)), send)
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 5 + [Verdict.REJECTED] + [
        Verdict.DELIVERED
    ] * 2
    assert outcomes[5].reason == "item 5 refused among 1"
    # In order, first halves first: one bad item costs log2(n) extra calls, not n.
    assert calls == [list(range(8)), [0, 1, 2, 3], [4, 5, 6, 7], [4, 5], [4], [5], [6, 7]]


class Keeper(Destination):
    name = "keeper"

    def deliver(self, events: Sequence[Event], time_left: TimeLeft = None) -> list[Outcome]:
        return [DELIVERED] * len(events)


def test_a_destination_keeps_nothing_to_erase_unless_it_says_so() -> None:
    outcome = Keeper().forget(Visitor(endpoint_id="ep-1"))
    assert outcome == Outcome(Verdict.DELIVERED, "keeper keeps nothing to erase")
