"""The Customer Profiles destination and its setup over real HTTP: a boto3 client, with fake
credentials, against the local stand-in on loopback."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

import boto3
import botocore.session
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.destinations.base import call_budget_ms
from chalicelib.destinations.customer_profiles import CustomerProfiles
from chalicelib.destinations.customer_profiles.delivery import CustomerProfilesDestination
from chalicelib.destinations.customer_profiles.object_type import (
    object_id,
)
from chalicelib.destinations.customer_profiles.settings import Settings
from chalicelib.outcomes import Verdict
from chalicelib.settlement import settlement_reserve_ms
from devtools.deploy import profiles_setup
from devtools.deploy.profiles_setup import ensure_object_type
from devtools.offline import NOWHERE
from devtools.queue_spec import consumer_timeout_seconds
from devtools.standins.customer_profiles import ERROR_TYPES, AcceptedObject, ProfilesStandIn
from tests.factories import numbered_event

DOMAIN = "pixel-relay-test"
ENV = {"PROFILES_DOMAIN": DOMAIN, "ALLOWED_USER_ATTRIBUTES": "plan,tier"}
OPERATIONS = (
    "BatchPutProfileObject",
    "PutProfileObject",
    "PutProfileObjectType",
    "GetProfileObjectType",
    "GetDomain",
    "SearchProfiles",
    "ListProfileObjects",
    "DeleteProfile",
)


# Received 100 ms after the hit.
make_event = partial(numbered_event, received_at="2026-11-28T11:00:00.100Z")


def client_for(url: str) -> Any:
    # As create() builds it, pointed at the stand-in.
    config = Config(
        connect_timeout=2, read_timeout=5, retries={"mode": "standard", "total_max_attempts": 3}
    )
    return boto3.client("customer-profiles", endpoint_url=url, config=config)


@pytest.fixture
def standin() -> Iterator[ProfilesStandIn]:
    with ProfilesStandIn(domains=[DOMAIN]) as server:
        yield server


@pytest.fixture
def pool() -> Iterator[ThreadPoolExecutor]:
    """The consumer's pool, as runtime makes it."""
    with ThreadPoolExecutor(32) as threads:
        yield threads


@pytest.fixture
def ready(standin: ProfilesStandIn) -> ProfilesStandIn:
    """The stand-in with the object type defined by the setup, as a deployed stage has it."""
    assert ensure_object_type(client_for(standin.url), Settings.from_env(ENV)).action == "created"
    standin.reset()
    return standin


def destination(
    url: str, object_type: str = "PixelRelayEvent", budget_ms: int = 0
) -> CustomerProfilesDestination:
    return CustomerProfilesDestination(client_for(url), DOMAIN, object_type, budget_ms)


def batches(standin: ProfilesStandIn) -> list[int]:
    return [r.status for r in standin.requests if r.operation == "BatchPutProfileObject"]


def instant(second: int) -> str:
    return f"2026-11-28T11:{second // 60:02d}:{second % 60:02d}.000Z"


# Wire facts -------------------------------------------------------------------------------


def test_standin_errors_are_the_ones_botocore_declares() -> None:
    model = botocore.session.get_session().get_service_model("customer-profiles")
    for name in OPERATIONS:
        declared = {
            shape.metadata["error"]["httpStatusCode"]: shape.name
            for shape in model.operation_model(name).error_shapes
        }
        assert declared == ERROR_TYPES, name


def test_standin_refuses_what_botocores_model_refuses(ready: ProfilesStandIn) -> None:
    unchecked = boto3.client(
        "customer-profiles",
        endpoint_url=ready.url,
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as raised:
        unchecked.put_profile_object(DomainName=DOMAIN, ObjectTypeName="PixelRelayEvent", Object="")
    assert raised.value.response["Error"]["Code"] == "BadRequestException"
    assert "Object" in raised.value.response["Error"]["Message"]
    items = [{"Id": str(n), "Object": "{}"} for n in range(11)]
    with pytest.raises(ClientError) as raised:
        unchecked.batch_put_profile_object(
            DomainName=DOMAIN, ObjectTypeName="PixelRelayEvent", Items=items
        )
    assert raised.value.response["Error"]["Code"] == "BadRequestException"
    assert "Items" in raised.value.response["Error"]["Message"]


def test_standin_refuses_what_the_model_limits_though_botocore_does_not_check_it(
    ready: ProfilesStandIn,
) -> None:
    """What the stand-in used to accept: a domain name with a space, a 100-character trigger
    name, 6 conditions (botocore's client checks none of these before sending)."""
    checked = client_for(ready.url)
    condition = {
        "EventTriggerDimensions": [
            {
                "ObjectAttributes": [
                    {
                        "FieldName": "event_type",
                        "ComparisonOperator": "EQUAL",
                        "Values": ["purchase"],
                    }
                ]
            }
        ],
        "LogicalOperator": "ANY",
    }
    trigger = {
        "DomainName": DOMAIN,
        "EventTriggerName": "t",
        "ObjectTypeName": "PixelRelayEvent",
        "EventTriggerConditions": [condition],
    }
    for changed, named in (
        ({"EventTriggerName": "t" * 100}, "EventTriggerName"),
        ({"EventTriggerConditions": [condition] * 6}, "EventTriggerConditions"),
    ):
        with pytest.raises(ClientError) as raised:
            checked.create_event_trigger(**{**trigger, **changed})
        assert raised.value.response["Error"]["Code"] == "BadRequestException"
        assert named in raised.value.response["Error"]["Message"]
    with pytest.raises(ClientError) as raised:
        checked.get_domain(DomainName="has space")
    assert "pattern" in raised.value.response["Error"]["Message"]
    assert all(r.status == 400 for r in ready.requests)


def test_standin_refuses_an_object_without_its_unique_key(ready: ProfilesStandIn) -> None:
    with pytest.raises(ClientError) as raised:
        client_for(ready.url).put_profile_object(
            DomainName=DOMAIN, ObjectTypeName="PixelRelayEvent", Object='{"event_id": "e-1"}'
        )
    assert raised.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    assert ready.accepted_objects == []


# Delivery ---------------------------------------------------------------------------------


def test_events_are_recorded_and_attributes_reach_the_profile(ready: ProfilesStandIn) -> None:
    events = [
        make_event(1, user_attributes={"plan": ("gold", "silver")}),
        make_event(2, user_attributes={"tier": ("b",)}, user_id="u-1"),
        make_event(3, endpoint="ep-2"),
    ]
    outcomes = destination(ready.url).deliver(events)
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 3
    assert [o.profile for o in outcomes] == [Verdict.DELIVERED, Verdict.DELIVERED, None]
    assert batches(ready) == [200]  # three objects, one call
    stored = ready.stored_objects(DOMAIN, "PixelRelayEvent")
    assert sorted(o["event_id"] for o in stored) == ["e-1", "e-2", "e-3"]
    profile = ready.profile(DOMAIN, "pixelRelayEndpointId", "ep-1")
    assert profile is not None
    assert profile["Attributes"] == {"pixel_relay_endpoint_id": "ep-1", "plan": "gold, silver"}
    # A hit with a trusted user id writes the user's profile, keyed by the user id alone.
    user = ready.profile(DOMAIN, "pixelRelayUserId", "u-1")
    assert user is not None
    assert user["ProfileId"] != profile["ProfileId"]
    assert user["Attributes"] == {
        "pixel_relay_endpoint_id": "ep-1",
        "pixel_relay_user_id": "u-1",
        "tier": "b",
    }
    other = ready.profile(DOMAIN, "pixelRelayEndpointId", "ep-2")
    assert other is not None
    assert other["Attributes"] == {"pixel_relay_endpoint_id": "ep-2"}


def test_a_profile_is_found_by_its_key_listed_page_by_page_and_deleted(
    ready: ProfilesStandIn,
) -> None:
    """What `ops check` reads back (SearchProfiles by the object type's PROFILE key,
    ListProfileObjects through NextToken) and how it cleans up (DeleteProfile)."""
    events = [make_event(n, endpoint="ep-9") for n in (1, 2, 3)]
    destination(ready.url).deliver(events)
    profiles = client_for(ready.url)
    found = profiles.search_profiles(
        DomainName=DOMAIN, KeyName="pixelRelayEndpointId", Values=["ep-9", "nobody"]
    )["Items"]
    [profile] = found
    assert profile["Attributes"]["pixel_relay_endpoint_id"] == "ep-9"
    # FoundByItems: "a key-value(s) pair that matches an attribute in the profile" (AWS's
    # API reference), so only the value that found it.
    assert profile["FoundByItems"] == [{"KeyName": "pixelRelayEndpointId", "Values": ["ep-9"]}]
    listed: list[dict[str, Any]] = []
    request = {"DomainName": DOMAIN, "ObjectTypeName": "PixelRelayEvent", "MaxResults": 2}
    token: dict[str, str] = {}
    while True:
        page = profiles.list_profile_objects(ProfileId=profile["ProfileId"], **request, **token)
        listed += page["Items"]
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
    assert sorted(json.loads(item["Object"])["event_id"] for item in listed) == [
        "e-1",
        "e-2",
        "e-3",
    ]
    assert {item["ObjectTypeName"] for item in listed} == {"PixelRelayEvent"}
    profiles.delete_profile(DomainName=DOMAIN, ProfileId=profile["ProfileId"])
    assert (
        profiles.search_profiles(
            DomainName=DOMAIN, KeyName="pixelRelayEndpointId", Values=["ep-9"]
        )["Items"]
        == []
    )
    assert ready.stored_objects(DOMAIN, "PixelRelayEvent") == []
    with pytest.raises(ClientError) as raised:
        profiles.delete_profile(DomainName=DOMAIN, ProfileId=profile["ProfileId"])
    assert raised.value.response["Error"]["Code"] == "ResourceNotFoundException"


def test_the_reads_refuse_what_the_model_refuses(ready: ProfilesStandIn) -> None:
    """MaxResults is 1-100 in botocore's model, whose validator checks the minimum only."""
    profiles = client_for(ready.url)
    for bad in ({"MaxResults": 101}, {"ProfileId": "not-hex"}):
        request = {
            "DomainName": DOMAIN,
            "ObjectTypeName": "PixelRelayEvent",
            "ProfileId": "0" * 32,
            **bad,
        }
        with pytest.raises(ClientError) as raised:
            profiles.list_profile_objects(**request)
        assert raised.value.response["Error"]["Code"] == "BadRequestException", bad


def test_a_resent_event_replaces_its_object(ready: ProfilesStandIn) -> None:
    sender = destination(ready.url)
    sender.deliver([make_event(1)])
    sender.deliver([make_event(1), make_event(1, endpoint="ep-2")])
    assert len(ready.accepted_objects) == 3
    stored = ready.stored_objects(DOMAIN, "PixelRelayEvent")
    assert sorted(o["object_id"] for o in stored) == sorted(
        {object_id(make_event(1)), object_id(make_event(1, endpoint="ep-2"))}
    )


# The newest value wins --------------------------------------------------------------------


def test_two_events_in_reverse_time_order_leave_the_newer_value(ready: ProfilesStandIn) -> None:
    newer = make_event(1, timestamp=instant(30), user_attributes={"plan": ("gold",)})
    older = make_event(2, timestamp=instant(10), user_attributes={"plan": ("silver",)})
    outcomes = destination(ready.url).deliver([newer, older])
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 2
    profile = ready.profile(DOMAIN, "pixelRelayEndpointId", "ep-1")
    assert profile is not None
    assert profile["Attributes"]["plan"] == "gold"
    # Applied newest first (the stand-in applies a batch last to first, the worst AWS's
    # silence allows), and only the newest event carried the value: it stands.
    assert [a.object["event_id"] for a in ready.accepted_objects] == ["e-1", "e-2"]


def test_an_older_event_delivered_in_a_later_batch_writes_its_value_as_aws_allows(
    ready: ProfilesStandIn,
) -> None:
    """What does not hold (docs/destinations/customer-profiles.md): AWS does not say that the
    source timestamp orders updates, so an older event that arrives in a later batch (a
    retry) writes its value; the next newer event writes the newest again."""
    sender = destination(ready.url)
    sender.deliver([make_event(1, timestamp=instant(30), user_attributes={"plan": ("gold",)})])
    sender.deliver([make_event(2, timestamp=instant(10), user_attributes={"plan": ("silver",)})])
    profile = ready.profile(DOMAIN, "pixelRelayEndpointId", "ep-1")
    assert profile is not None
    assert profile["Attributes"]["plan"] == "silver"
    sender.deliver([make_event(3, timestamp=instant(40), user_attributes={"plan": ("bronze",)})])
    assert ready.profile(DOMAIN, "pixelRelayEndpointId", "ep-1")["Attributes"]["plan"] == (  # type: ignore[index]
        "bronze"
    )


# Identity ---------------------------------------------------------------------------------


def test_one_users_devices_meet_in_one_profile_and_anonymous_ones_stay_apart(
    ready: ProfilesStandIn,
) -> None:
    sender = destination(ready.url)
    sender.deliver([make_event(1, endpoint="laptop", timestamp=instant(1))])  # anonymous first
    sender.deliver([make_event(2, endpoint="phone", timestamp=instant(2), user_id="u-1")])
    sender.deliver([make_event(3, endpoint="laptop", timestamp=instant(3), user_id="u-1")])
    sender.deliver([make_event(4, endpoint="tablet", timestamp=instant(4))])  # anonymous
    user = ready.profile(DOMAIN, "pixelRelayUserId", "u-1")
    assert user is not None
    # Both devices' signed events on the user's profile: the laptop that had an anonymous
    # profile signs in without its object naming two profiles (AWS does not say what that
    # does; the stand-in refuses it), so nothing is refused.
    assert [a.profile_id for a in ready.accepted_objects[1:3]] == [user["ProfileId"]] * 2
    assert all(r.status == 200 for r in ready.requests)
    laptop = ready.profile(DOMAIN, "pixelRelayEndpointId", "laptop")
    tablet = ready.profile(DOMAIN, "pixelRelayEndpointId", "tablet")
    assert laptop is not None
    assert tablet is not None
    assert len({user["ProfileId"], laptop["ProfileId"], tablet["ProfileId"]}) == 3


# Failures ---------------------------------------------------------------------------------


def test_a_bad_object_rejects_one_event_and_the_others_land(ready: ProfilesStandIn) -> None:
    ready.reject_events("broken", "Object does not match the object type")
    events = [make_event(1), make_event(2, event_type="broken"), make_event(3)]
    outcomes = destination(ready.url).deliver(events)
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.REJECTED, Verdict.DELIVERED]
    # The item's status, never the service's message (it may quote an id).
    assert outcomes[1].reason == "BatchPutProfileObject item failed: 400"
    assert batches(ready) == [200]  # one call; the item's failure is its own


def test_item_failures_are_retried_one_by_one(ready: ProfilesStandIn) -> None:
    ready.fail_next_items(500)
    ready.fail_next_items(429)
    ready.fail_next_items(0)  # left out of the answer
    events = [make_event(i, endpoint=f"ep-{i}") for i in range(1, 5)]
    outcomes = destination(ready.url).deliver(events)
    assert [o.verdict for o in outcomes] == [Verdict.RETRY] * 3 + [Verdict.DELIVERED]
    assert [o.reason for o in outcomes[:3]] == [
        "BatchPutProfileObject item failed: 500",
        "BatchPutProfileObject item failed: 429",
        "BatchPutProfileObject answered nothing for the object",
    ]
    assert [a.object["event_id"] for a in ready.accepted_objects] == ["e-4"]  # e-1..3 failed
    # Sent again (the queue hands the messages back), they land.
    assert all(o.verdict is Verdict.DELIVERED for o in destination(ready.url).deliver(events))


def test_a_throttled_call_is_retried_by_the_client(ready: ProfilesStandIn) -> None:
    ready.fail_next_requests(429, count=1)
    outcomes = destination(ready.url).deliver([make_event(1)])
    assert outcomes[0].verdict is Verdict.DELIVERED
    assert batches(ready) == [429, 200]


def test_throttling_that_outlasts_the_client_retries_the_batch(ready: ProfilesStandIn) -> None:
    ready.fail_next_requests(429, count=3)
    sender = destination(ready.url)
    outcomes = sender.deliver([make_event(1), make_event(2)])
    assert [o.verdict for o in outcomes] == [Verdict.RETRY, Verdict.RETRY]
    assert outcomes[0].reason == "BatchPutProfileObject failed: 429 ThrottlingException"
    assert batches(ready) == [429, 429, 429]  # three attempts, then nothing more this batch
    assert ready.accepted_objects == []
    # The queue hands the batch back later: now it lands.
    assert [o.verdict for o in sender.deliver([make_event(1), make_event(2)])] == [
        Verdict.DELIVERED
    ] * 2


def test_a_missing_domain_is_retried_until_the_redrive_parks_it(standin: ProfilesStandIn) -> None:
    sender = CustomerProfilesDestination(
        client_for(standin.url), "no-such-domain", "PixelRelayEvent"
    )
    outcomes = sender.deliver([make_event(1, user_attributes={"plan": ("a",)}), make_event(2)])
    assert [o.verdict for o in outcomes] == [Verdict.RETRY, Verdict.RETRY]
    assert outcomes[0].reason == "BatchPutProfileObject failed: 404 ResourceNotFoundException"
    assert outcomes[0].profile is Verdict.RETRY
    assert batches(standin) == [404]


def test_a_missing_object_type_is_retried(standin: ProfilesStandIn) -> None:
    outcomes = destination(standin.url).deliver([make_event(1)])
    assert outcomes[0].verdict is Verdict.RETRY
    assert outcomes[0].reason == "BatchPutProfileObject failed: 404 ResourceNotFoundException"


def test_an_unreachable_service_is_retried() -> None:
    outcomes = destination(NOWHERE).deliver([make_event(1), make_event(2)])
    assert [o.verdict for o in outcomes] == [Verdict.RETRY, Verdict.RETRY]
    assert outcomes[0].reason == "BatchPutProfileObject failed: EndpointConnectionError"


# Time -------------------------------------------------------------------------------------


def test_a_batch_of_100_at_300_ms_a_call_runs_no_event_out_of_time(
    ready: ProfilesStandIn, pool: ThreadPoolExecutor
) -> None:
    """Lambda's default consumer timeout minus the settlement reserve, and the stand-in
    answering every call 300 ms late: the default pool writes the batch well in time."""
    timeout_ms = consumer_timeout_seconds("dev") * 1000
    reserve = settlement_reserve_ms(100, 1, report_batch_item_failures=False)
    ready.delay_next_requests(0.3, count=100)
    events = [make_event(i, endpoint=f"ep-{i % 37}", timestamp=instant(i % 60)) for i in range(100)]
    settings = Settings.from_env({**ENV, "PROFILES_DOMAIN": DOMAIN})
    sender = CustomerProfilesDestination(
        client_for(ready.url),
        settings.domain,
        settings.object_type,
        call_budget_ms(settings.timeout_seconds),
        settings.write_threads,
        pool,
    )
    started = time.monotonic()

    def time_left() -> int:
        return timeout_ms - reserve - int((time.monotonic() - started) * 1000)

    outcomes = sender.deliver(events, time_left)
    assert sum(1 for o in outcomes if o.reason == "out of time") == 0
    assert all(o.verdict is Verdict.DELIVERED for o in outcomes)
    assert batches(ready) == [200] * 10
    assert time_left() > call_budget_ms(10)


def test_create_reads_the_endpoint_from_the_environment(
    ready: ProfilesStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CUSTOMER_PROFILES", ready.url)
    built = CustomerProfiles.configure(ENV).create()
    assert built.deliver([make_event(1)])[0].verdict is Verdict.DELIVERED


def test_on_accept_sees_each_object_in_order() -> None:
    seen: list[AcceptedObject] = []
    with ProfilesStandIn(domains=[DOMAIN], on_accept=seen.append) as watched:
        ensure_object_type(client_for(watched.url), Settings.from_env(ENV))
        destination(watched.url).deliver([make_event(1), make_event(2)])
    # As the stand-in applies one request's objects: last to first.
    assert [record.object["event_id"] for record in seen] == ["e-2", "e-1"]
    assert all(record.profile_id for record in seen)


# Setup ------------------------------------------------------------------------------------


def test_setup_is_idempotent(standin: ProfilesStandIn) -> None:
    client = client_for(standin.url)
    settings = Settings.from_env(ENV)
    assert ensure_object_type(client, settings).action == "created"
    assert ensure_object_type(client, settings) == profiles_setup.SetupResult("unchanged")
    kinds = [r.operation for r in standin.requests]
    assert kinds.count("PutProfileObjectType") == 1


def test_setup_updates_when_the_allowlist_changes(standin: ProfilesStandIn) -> None:
    client = client_for(standin.url)
    ensure_object_type(client, Settings.from_env(ENV))
    wider = Settings.from_env({**ENV, "ALLOWED_USER_ATTRIBUTES": "plan,tier,city"})
    assert ensure_object_type(client, wider, dry_run=True).changed == ("Fields",)
    defined = client.get_profile_object_type(DomainName=DOMAIN, ObjectTypeName="PixelRelayEvent")
    assert "user.city" not in defined["Fields"]  # a dry run changes nothing
    assert ensure_object_type(client, wider) == profiles_setup.SetupResult("updated", ("Fields",))
    assert ensure_object_type(client, wider).action == "unchanged"


def test_setup_names_a_missing_domain(standin: ProfilesStandIn) -> None:
    settings = Settings.from_env({**ENV, "PROFILES_DOMAIN": "elsewhere"})
    with pytest.raises(profiles_setup.SetupError, match="'elsewhere' does not exist"):
        ensure_object_type(client_for(standin.url), settings)


def write_project(root: Path, environment: dict[str, str]) -> Path:
    config = {
        "version": "2.0",
        "app_name": "t",
        "stages": {"dev": {"environment_variables": environment}},
    }
    (root / ".chalice").mkdir()
    (root / ".chalice" / "config.json").write_text(json.dumps(config))
    return root


def test_setup_command_creates_then_changes_nothing(
    standin: ProfilesStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CUSTOMER_PROFILES", standin.url)
    root = write_project(tmp_path, ENV)
    assert profiles_setup.main(["--stage", "dev"], root=root) == 0
    assert profiles_setup.main(["--stage", "dev"], root=root) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"created object type 'PixelRelayEvent' in domain '{DOMAIN}'",
        "no event triggers: PROFILES_TRIGGER_EVENTS is empty",
        f"object type 'PixelRelayEvent' in domain '{DOMAIN}' is up to date; nothing to do",
        "no event triggers: PROFILES_TRIGGER_EVENTS is empty",
    ]


def test_setup_command_explains_what_is_missing(
    standin: ProfilesStandIn,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_CUSTOMER_PROFILES", standin.url)
    (tmp_path / "a").mkdir()
    unset = write_project(tmp_path / "a", {})
    assert profiles_setup.main(["--stage", "dev"], root=unset) == 2
    assert "PROFILES_DOMAIN" in capsys.readouterr().err
    elsewhere = tmp_path / "b"
    elsewhere.mkdir()
    write_project(elsewhere, {"PROFILES_DOMAIN": "elsewhere"})
    assert profiles_setup.main(["--stage", "dev"], root=elsewhere) == 1
    assert "'elsewhere' does not exist" in capsys.readouterr().err
