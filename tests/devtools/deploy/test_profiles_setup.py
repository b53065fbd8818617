"""`make profiles-setup`, against the Customer Profiles stand-in on loopback through a real
boto3 client: the object type, the event triggers and their limits, and each campaign's
integration: created when missing, put back when drifted, left alone when up to date, never
deleted; a trigger with no campaign is reported."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.destinations.customer_profiles.object_type import object_type_definition
from chalicelib.destinations.customer_profiles.settings import Settings
from devtools.deploy import profiles_setup
from devtools.deploy.profiles_setup import (
    ensure_event_triggers,
    ensure_integrations,
    ensure_object_type,
    event_trigger_definition,
)
from devtools.standins.campaigns import CampaignsStandIn
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


CAMPAIGN = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/c-1"
OTHER = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/c-2"
DOMAIN_ARN = f"arn:aws:profile:us-east-1:123456789012:domains/{DOMAIN}"
COMPARED_TRIGGER = ("ObjectTypeName", "Description", "EventTriggerConditions", "EventTriggerLimits")


def settings(events: str, **more: str) -> Settings:
    return Settings.from_env({"PROFILES_DOMAIN": DOMAIN, "PROFILES_TRIGGER_EVENTS": events, **more})


def actions(results: list[profiles_setup.TriggerResult]) -> dict[str, str]:
    return {result.name: result.action for result in results}


def stored(client: Any, name: str) -> dict[str, Any]:
    answer = client.get_event_trigger(DomainName=DOMAIN, EventTriggerName=name)
    return {k: answer[k] for k in COMPARED_TRIGGER}


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
        k: definition[k] for k in COMPARED_TRIGGER
    }
    [condition] = definition["EventTriggerConditions"]
    # Both dimensions: the event type, and delivered on time (not a late retry or replay).
    assert condition["LogicalOperator"] == "ALL"
    assert [d["ObjectAttributes"] for d in condition["EventTriggerDimensions"]] == [
        [
            {
                "FieldName": "event_type",
                "ComparisonOperator": "EQUAL",
                "Values": ["purchase_success"],
            }
        ],
        [{"FieldName": "on_time", "ComparisonOperator": "EQUAL", "Values": ["true"]}],
    ]
    # Safe by default: one start per profile a day, none an hour after the event.
    assert definition["EventTriggerLimits"] == {
        "EventExpiration": 3_600_000,
        "Periods": [
            {"Unit": "DAYS", "Value": 1, "MaxInvocationsPerProfile": 1, "Unlimited": False}
        ],
    }


def test_a_changed_trigger_is_put_back_limits_included(client: Any) -> None:
    wanted = settings("purchase_success")
    ensure_object_type(client, wanted)
    ensure_event_triggers(client, wanted)
    # Someone edited it: another description, and limits of their own.
    client.update_event_trigger(
        DomainName=DOMAIN,
        EventTriggerName="pixel-relay-purchase_success",
        Description="edited by hand",
        EventTriggerLimits={
            "Periods": [{"Unit": "DAYS", "Value": 1, "MaxInvocationsPerProfile": 20}]
        },
    )

    [result] = ensure_event_triggers(client, wanted, dry_run=True)
    assert (result.action, result.changed) == ("updated", ("Description", "EventTriggerLimits"))
    assert stored(client, result.name)["Description"] == "edited by hand"  # dry run: untouched

    [result] = ensure_event_triggers(client, wanted)
    assert result.action == "updated"
    definition = event_trigger_definition(wanted, "purchase_success")
    assert stored(client, result.name) == {k: definition[k] for k in COMPARED_TRIGGER}
    assert actions(ensure_event_triggers(client, wanted)) == {
        "pixel-relay-purchase_success": "unchanged"
    }


def test_new_limit_settings_update_every_trigger(client: Any) -> None:
    ensure_object_type(client, settings("purchase_success"))
    ensure_event_triggers(client, settings("purchase_success"))
    stricter = settings(
        "purchase_success",
        PROFILES_TRIGGER_MAX_STARTS="3",
        PROFILES_TRIGGER_PERIOD="2 WEEKS",
        PROFILES_TRIGGER_EXPIRATION_SECONDS="600",
    )
    [result] = ensure_event_triggers(client, stricter)
    assert (result.action, result.changed) == ("updated", ("EventTriggerLimits",))
    limits = stored(client, result.name)["EventTriggerLimits"]
    assert limits == {
        "EventExpiration": 600_000,
        "Periods": [
            {"Unit": "WEEKS", "Value": 2, "MaxInvocationsPerProfile": 3, "Unlimited": False}
        ],
    }


def test_every_object_type_field_setup_decides_is_compared_and_put_back(client: Any) -> None:
    wanted = settings("")
    assert ensure_object_type(client, wanted).action == "created"
    drifted = {**object_type_definition(wanted)}
    drifted.update(
        SourceLastUpdatedTimestampFormat="epoch", ExpirationDays=7, MaxProfileObjectCount=900
    )
    client.put_profile_object_type(**drifted)
    result = ensure_object_type(client, wanted)
    assert (result.action, result.changed) == (
        "updated",
        ("ExpirationDays", "MaxProfileObjectCount", "SourceLastUpdatedTimestampFormat"),
    )
    answer = client.get_profile_object_type(DomainName=DOMAIN, ObjectTypeName="PixelRelayEvent")
    assert answer["SourceLastUpdatedTimestampFormat"] == "yyyy-MM-dd'T'HH:mm:ss.SSSX"
    assert (answer["ExpirationDays"], answer["MaxProfileObjectCount"]) == (365, 200)
    assert ensure_object_type(client, wanted).action == "unchanged"


# The campaign link ------------------------------------------------------------------------


def linked(client: Any, campaign: str) -> list[str]:
    return list(client.get_integration(DomainName=DOMAIN, Uri=campaign)["EventTriggerNames"])


def test_each_campaign_is_linked_to_its_trigger_once(client: Any) -> None:
    wanted = settings(
        "purchase_success,signup,view",
        PROFILES_CAMPAIGNS=f"purchase_success={CAMPAIGN},signup={OTHER}",
    )
    ensure_object_type(client, wanted)
    ensure_event_triggers(client, wanted)

    results = ensure_integrations(client, wanted)
    assert [(r.trigger, r.campaign, r.action) for r in results] == [
        ("pixel-relay-purchase_success", CAMPAIGN, "created"),
        ("pixel-relay-signup", OTHER, "created"),
        ("pixel-relay-view", None, "no campaign"),
    ]
    # PutIntegration as the model has it: the campaign's ARN as Uri, the trigger named once.
    assert linked(client, CAMPAIGN) == ["pixel-relay-purchase_success"]
    assert linked(client, OTHER) == ["pixel-relay-signup"]
    assert "has no campaign" in profiles_setup.integration_report(results[2], dry_run=False)

    again = ensure_integrations(client, wanted)
    assert [r.action for r in again] == ["unchanged", "unchanged", "no campaign"]
    puts = [r for r in again if r.action in ("created", "updated")]
    assert puts == []


def test_a_drifted_integration_is_put_back_and_a_foreign_one_reported(client: Any) -> None:
    wanted = settings("purchase_success,signup", PROFILES_CAMPAIGNS=f"purchase_success={CAMPAIGN}")
    ensure_object_type(client, wanted)
    ensure_event_triggers(client, wanted)
    ensure_integrations(client, wanted)
    # The console pointed the campaign at another trigger, and linked another campaign.
    client.put_integration(
        DomainName=DOMAIN, Uri=CAMPAIGN, EventTriggerNames=["pixel-relay-signup"]
    )
    client.put_integration(DomainName=DOMAIN, Uri=OTHER, EventTriggerNames=["pixel-relay-signup"])

    dry = ensure_integrations(client, wanted, dry_run=True)
    assert (dry[0].action, dry[0].changed) == ("updated", ("EventTriggerNames",))
    assert linked(client, CAMPAIGN) == ["pixel-relay-signup"]  # a dry run changes nothing

    results = ensure_integrations(client, wanted)
    assert [(r.trigger, r.campaign, r.action) for r in results] == [
        ("pixel-relay-purchase_success", CAMPAIGN, "updated"),
        ("pixel-relay-signup", OTHER, "not configured"),
        ("pixel-relay-signup", None, "no campaign"),
    ]
    assert linked(client, CAMPAIGN) == ["pixel-relay-purchase_success"]
    assert linked(client, OTHER) == ["pixel-relay-signup"]  # left in place


def test_reading_a_campaign_back_is_a_note_never_a_failure(client: Any) -> None:
    wanted = settings("purchase_success", PROFILES_CAMPAIGNS=f"purchase_success={CAMPAIGN}")
    with CampaignsStandIn() as campaigns:
        reader = boto3.client(
            "connectcampaignsv2",
            endpoint_url=campaigns.url,
            region_name="us-east-1",
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
        )
        # Not there (yet): a note.
        [note] = profiles_setup.campaign_notes(reader, wanted)
        assert "not read back (404 ResourceNotFoundException" in note
        campaigns.add_campaign(OTHER.replace("c-2", "c-1"), "Thanks", domain_arn=None)
        [note] = profiles_setup.campaign_notes(reader, wanted)
        assert "starts from a segment, not from domain" in note
        campaigns.add_campaign(CAMPAIGN, "Thanks", domain_arn=DOMAIN_ARN)
        [note] = profiles_setup.campaign_notes(reader, wanted)
        assert note == "campaign 'Thanks' starts from this domain's event triggers"


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
    environment = {
        "PROFILES_DOMAIN": DOMAIN,
        "PROFILES_TRIGGER_EVENTS": "purchase_success",
        "PROFILES_CAMPAIGNS": f"purchase_success={CAMPAIGN}",
    }
    config = {
        "version": "2.0",
        "app_name": "t",
        "stages": {"dev": {"environment_variables": environment}},
    }
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))

    assert profiles_setup.main(["--stage", "dev"], root=tmp_path) == 0
    assert profiles_setup.main(["--stage", "dev"], root=tmp_path) == 0

    lines = capsys.readouterr().out.splitlines()
    link = f"the integration starting {CAMPAIGN} from event trigger 'pixel-relay-purchase_success'"
    # The campaign cannot be read back here (no Connect): a note, and the setup succeeds.
    assert [line for line in lines if "not read back" not in line] == [
        f"created object type 'PixelRelayEvent' in domain '{DOMAIN}'",
        "created event trigger 'pixel-relay-purchase_success'",
        f"created {link}",
        f"object type 'PixelRelayEvent' in domain '{DOMAIN}' is up to date; nothing to do",
        "event trigger 'pixel-relay-purchase_success' is up to date",
        f"{link} is up to date",
    ]
    assert len([line for line in lines if "not read back" in line]) == 2
    # Setup writes no domain: the domain is the Connect instance's.
    writes = {r.operation for r in standin.requests if r.operation.startswith(("Put", "Create"))}
    assert writes == {"PutProfileObjectType", "CreateEventTrigger", "PutIntegration"}


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


def test_the_command_checks_campaign_arns_offline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    environment = {
        "PROFILES_DOMAIN": DOMAIN,
        "PROFILES_TRIGGER_EVENTS": "purchase_success",
        "PROFILES_CAMPAIGNS": "purchase_success=arn:aws:connect:us-east-1:123456789012:instance/x",
    }
    config = {
        "version": "2.0",
        "app_name": "t",
        "stages": {"dev": {"environment_variables": environment}},
    }
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))

    assert profiles_setup.main(["--stage", "dev"], root=tmp_path) == 2
    error = capsys.readouterr().err
    assert "PROFILES_CAMPAIGNS: purchase_success: is not a campaign's ARN" in error
