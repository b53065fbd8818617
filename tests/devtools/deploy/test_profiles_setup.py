"""`make profiles-setup`'s event triggers, against the Customer Profiles stand-in on loopback
through a real boto3 client: created when missing, updated when changed, left alone when up
to date, and never deleted when the setting stops naming them."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.destinations.customer_profiles.settings import Settings
from devtools.deploy import profiles_setup
from devtools.deploy.profiles_setup import (
    ensure_event_triggers,
    ensure_object_type,
    event_trigger_definition,
)
from devtools.standins.customer_profiles import ProfilesStandIn

DOMAIN = "pixel-relay-test"


@pytest.fixture
def standin() -> Iterator[ProfilesStandIn]:
    with ProfilesStandIn(domains=[DOMAIN]) as server:
        yield server


@pytest.fixture
def client(standin: ProfilesStandIn) -> Any:
    return boto3.client(
        "customer-profiles",
        endpoint_url=standin.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )


def settings(events: str) -> Settings:
    return Settings.from_env({"PROFILES_DOMAIN": DOMAIN, "PROFILES_TRIGGER_EVENTS": events})


def actions(results: list[profiles_setup.TriggerResult]) -> dict[str, str]:
    return {result.name: result.action for result in results}


def stored(client: Any, name: str) -> dict[str, Any]:
    answer = client.get_event_trigger(DomainName=DOMAIN, EventTriggerName=name)
    return {k: answer[k] for k in ("ObjectTypeName", "Description", "EventTriggerConditions")}


def test_creates_one_trigger_per_event_then_changes_nothing(client: Any) -> None:
    wanted = settings("purchase_success,signup")
    ensure_object_type(client, wanted)

    assert actions(ensure_event_triggers(client, wanted)) == {
        "pixel-relay-purchase_success": "created",
        "pixel-relay-signup": "created",
    }
    assert actions(ensure_event_triggers(client, wanted)) == {
        "pixel-relay-purchase_success": "unchanged",
        "pixel-relay-signup": "unchanged",
    }
    definition = event_trigger_definition(wanted, "purchase_success")
    assert stored(client, "pixel-relay-purchase_success") == {
        k: definition[k] for k in ("ObjectTypeName", "Description", "EventTriggerConditions")
    }
    [condition] = definition["EventTriggerConditions"]
    assert condition["EventTriggerDimensions"] == [
        {
            "ObjectAttributes": [
                {
                    "FieldName": "event_type",
                    "ComparisonOperator": "EQUAL",
                    "Values": ["purchase_success"],
                }
            ]
        }
    ]


def test_a_changed_trigger_is_put_back_and_its_limits_are_left_alone(client: Any) -> None:
    wanted = settings("purchase_success")
    ensure_object_type(client, wanted)
    ensure_event_triggers(client, wanted)
    # Someone edited it: another value, and a limit of their own.
    client.update_event_trigger(
        DomainName=DOMAIN,
        EventTriggerName="pixel-relay-purchase_success",
        Description="edited by hand",
        EventTriggerLimits={
            "Periods": [{"Unit": "DAYS", "Value": 1, "MaxInvocationsPerProfile": 2}]
        },
    )

    [result] = ensure_event_triggers(client, wanted, dry_run=True)
    assert (result.action, result.changed) == ("updated", ("Description",))
    assert stored(client, result.name)["Description"] == "edited by hand"  # dry run: untouched

    [result] = ensure_event_triggers(client, wanted)
    assert result.action == "updated"
    answer = client.get_event_trigger(DomainName=DOMAIN, EventTriggerName=result.name)
    assert (
        answer["Description"] == event_trigger_definition(wanted, "purchase_success")["Description"]
    )
    assert answer["EventTriggerLimits"]["Periods"][0]["MaxInvocationsPerProfile"] == 2


def test_a_trigger_no_longer_configured_is_reported_and_kept(client: Any) -> None:
    ensure_object_type(client, settings("purchase_success,signup"))
    ensure_event_triggers(client, settings("purchase_success,signup"))

    results = ensure_event_triggers(client, settings("purchase_success"))

    assert actions(results) == {
        "pixel-relay-purchase_success": "unchanged",
        "pixel-relay-signup": "not configured",
    }
    assert "left in place" in profiles_setup.trigger_report(results[1], dry_run=False)
    names = [t["EventTriggerName"] for t in client.list_event_triggers(DomainName=DOMAIN)["Items"]]
    assert names == ["pixel-relay-purchase_success", "pixel-relay-signup"]


def test_a_dry_run_creates_nothing(client: Any) -> None:
    wanted = settings("purchase_success")
    ensure_object_type(client, wanted)
    assert actions(ensure_event_triggers(client, wanted, dry_run=True)) == {
        "pixel-relay-purchase_success": "created"
    }
    assert client.list_event_triggers(DomainName=DOMAIN)["Items"] == []


def test_the_command_sets_up_the_stage_and_says_what_it_did(
    standin: ProfilesStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CUSTOMER_PROFILES", standin.url)
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.setenv(name, "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    environment = {"PROFILES_DOMAIN": DOMAIN, "PROFILES_TRIGGER_EVENTS": "purchase_success"}
    config = {
        "version": "2.0",
        "app_name": "t",
        "stages": {"dev": {"environment_variables": environment}},
    }
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))

    assert profiles_setup.main(["--stage", "dev"], root=tmp_path) == 0
    assert profiles_setup.main(["--stage", "dev"], root=tmp_path) == 0

    assert capsys.readouterr().out.splitlines() == [
        f"created object type 'PixelRelayEvent' in domain '{DOMAIN}'",
        "created event trigger 'pixel-relay-purchase_success'",
        f"object type 'PixelRelayEvent' in domain '{DOMAIN}' is up to date; nothing to do",
        "event trigger 'pixel-relay-purchase_success' is up to date",
    ]


def test_the_command_names_a_bad_trigger_event(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environment = {"PROFILES_DOMAIN": DOMAIN, "PROFILES_TRIGGER_EVENTS": "purchase success"}
    config = {
        "version": "2.0",
        "app_name": "t",
        "stages": {"dev": {"environment_variables": environment}},
    }
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))

    assert profiles_setup.main(["--stage", "dev"], root=tmp_path) == 2
    assert "PROFILES_TRIGGER_EVENTS: 'purchase success'" in capsys.readouterr().err
