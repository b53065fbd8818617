"""EventBridge's entry size, as PutEvents' reference states it (the model carries none),
refuses what AWS refuses, locally and through the proxy."""

from __future__ import annotations

from devtools.standins import strict
from devtools.standins.limits.eventbridge import entry_size
from devtools.standins.moto_proxy import StrictMotoProxy
from tests.devtools.standins.proxy_calls import client, refused

MIB = 1024 * 1024


def test_entries_under_1_mb_in_all_pass() -> None:
    entries = [{"Source": "s", "DetailType": "d", "Detail": "x" * (MIB - 20)}]
    assert strict.problems("events", "PutEvents", {"Entries": entries}) == []


def test_entries_of_1_mb_in_all_are_refused() -> None:
    entries = [{"Source": "s", "DetailType": "d", "Detail": "x" * (MIB // 2)}] * 2
    found = strict.problems("events", "PutEvents", {"Entries": entries})
    assert any("must be less than 1 MB" in problem for problem in found), found


def test_an_entry_is_sized_as_aws_counts_it() -> None:
    # Time counts 14 bytes; Source, DetailType, Detail and each resource their UTF-8 bytes.
    entry = {"Time": 0, "Source": "s", "DetailType": "dé", "Detail": "{}", "Resources": ["r"]}
    assert entry_size(entry) == 14 + 1 + 3 + 2 + 1


def test_moto_behind_the_proxy_refuses_entries_over_1_mb(strict_moto: StrictMotoProxy) -> None:
    events = client(strict_moto, "events")
    big = [{"Source": "s", "DetailType": "d", "Detail": "x" * (MIB // 2)}] * 2
    assert "less than 1 MB" in refused(events.put_events, Entries=big)
    assert ("events", "PutEvents") in {(r.service, r.operation) for r in strict_moto.refusals}
