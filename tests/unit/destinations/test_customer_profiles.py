"""The Customer Profiles destination: settings, the object, the object type and every outcome."""

from __future__ import annotations

import json
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime
from functools import partial
from typing import Any

import botocore.session
import pytest
from botocore.exceptions import (
    ClientError,
    EndpointConnectionError,
    ParamValidationError,
    ReadTimeoutError,
)
from botocore.validate import ParamValidator

from chalicelib.destinations import registry
from chalicelib.destinations.base import call_budget_ms
from chalicelib.destinations.customer_profiles import CustomerProfiles, delivery
from chalicelib.destinations.customer_profiles import settings as settings_module
from chalicelib.destinations.customer_profiles.delivery import CustomerProfilesDestination
from chalicelib.destinations.customer_profiles.object_type import (
    ObjectRules,
    object_id,
    object_type_definition,
    profile_identity,
    profile_object,
    profile_value,
)
from chalicelib.destinations.customer_profiles.planning import profile_groups
from chalicelib.destinations.customer_profiles.settings import Settings, TriggerLimits
from chalicelib.env import ConfigError
from chalicelib.events import Event, ProfileUpdate, Session
from chalicelib.outcomes import Verdict
from chalicelib.settlement import settlement_reserve_ms
from devtools.queue_spec import consumer_timeout_seconds
from tests.factories import numbered_event

ENV = {"PROFILES_DOMAIN": "pixel-relay-dev", "ALLOWED_USER_ATTRIBUTES": "plan,tier"}
TRIGGERED = {"PROFILES_TRIGGER_EVENTS": "purchase,signup"}
CAMPAIGN = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/c-1"
OTHER = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/c-2"


# Received 100 ms after the hit.
make_event = partial(numbered_event, received_at="2026-11-28T11:00:00.100Z")


def client_error(status: int, code: str, message: str = "m") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "BatchPutProfileObject")


ItemAnswer = tuple[int, str] | None  # (status, message) for a failed item; status 0: left out


class FakeProfiles:
    """Answers BatchPutProfileObject as the service does, after checking each request
    against botocore's model: `item(object)` may fail one item, `request(objects)` may raise
    for a whole call, and every call takes `delay` seconds. Safe for the destination's pool."""

    def __init__(
        self,
        item: Callable[[dict[str, Any]], ItemAnswer] | None = None,
        request: Callable[[list[dict[str, Any]]], None] | None = None,
        delay: float = 0.0,
    ) -> None:
        self.calls: list[dict[str, Any]] = []
        self.accepted: list[dict[str, Any]] = []
        self.item = item or (lambda obj: None)
        self.request = request or (lambda objs: None)
        self.delay = delay
        self.lock = threading.Lock()
        model = botocore.session.get_session().get_service_model("customer-profiles")
        self.shape: Any = model.operation_model("BatchPutProfileObject").input_shape

    def batch_put_profile_object(self, **params: Any) -> dict[str, Any]:
        report = ParamValidator().validate(params, self.shape)
        assert not report.has_errors(), report.generate_report()
        with self.lock:
            self.calls.append(params)
        objects = [json.loads(item["Object"]) for item in params["Items"]]
        self.request(objects)
        time.sleep(self.delay)
        successful, failed = [], []
        for item, obj in zip(params["Items"], objects, strict=True):
            answer = self.item(obj)
            if answer is None:
                successful.append({"Id": item["Id"], "ProfileObjectUniqueKey": "k"})
                with self.lock:
                    self.accepted.append(obj)
            elif answer[0]:
                failed.append({"Id": item["Id"], "Code": answer[0], "Message": answer[1]})
        return {"Successful": successful, "Failed": failed}

    @property
    def objects(self) -> list[dict[str, Any]]:
        """The objects answered as successful, in the order they were."""
        with self.lock:
            return list(self.accepted)


# The consumer's pool, as runtime makes it: the destination runs `threads` lanes on it.
POOL = ThreadPoolExecutor(32, thread_name_prefix="test-consumer")


def destination(
    client: FakeProfiles, budget_ms: int = 0, threads: int = 4
) -> CustomerProfilesDestination:
    return CustomerProfilesDestination(
        client, "pixel-relay-dev", "PixelRelayEvent", budget_ms, threads, POOL
    )


def failing_item(event_id: str, status: int, message: str = "m") -> Callable[..., ItemAnswer]:
    return lambda obj: (status, message) if obj["event_id"] == event_id else None


def failing_call(event_id: str, error: Exception) -> Callable[[list[dict[str, Any]]], None]:
    def request(objects: list[dict[str, Any]]) -> None:
        if any(obj["event_id"] == event_id for obj in objects):
            raise error

    return request


# Settings ---------------------------------------------------------------------------------


def test_settings_defaults_and_allowlist() -> None:
    settings = Settings.from_env(ENV)
    assert settings == Settings(
        domain="pixel-relay-dev",
        object_type="PixelRelayEvent",
        timeout_seconds=10,
        user_attributes=frozenset({"plan", "tier"}),
        write_threads=4,
    )
    assert Settings.from_env({**ENV, "PROFILES_WRITE_THREADS": "10"}).write_threads == 10


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"PROFILES_DOMAIN": ""}, "PROFILES_DOMAIN"),
        ({"PROFILES_DOMAIN": "has space"}, "PROFILES_DOMAIN"),
        ({"PROFILES_DOMAIN": "d" * 65}, "PROFILES_DOMAIN"),
        ({"PROFILES_OBJECT_TYPE": "_profile"}, "PROFILES_OBJECT_TYPE"),
        ({"PROFILES_OBJECT_TYPE": "1Event"}, "PROFILES_OBJECT_TYPE"),
        ({"DELIVERY_TIMEOUT_SECONDS": "0"}, "DELIVERY_TIMEOUT_SECONDS"),
        ({"DELIVERY_TIMEOUT_SECONDS": "31"}, "DELIVERY_TIMEOUT_SECONDS"),
        ({"ALLOWED_USER_ATTRIBUTES": "plan,favorite-color"}, "ALLOWED_USER_ATTRIBUTES"),
        ({"ALLOWED_USER_ATTRIBUTES": "a.b"}, "ALLOWED_USER_ATTRIBUTES"),
        ({"ALLOWED_USER_ATTRIBUTES": "pixel_relay_user_id"}, "ALLOWED_USER_ATTRIBUTES"),
        ({"PROFILES_WRITE_THREADS": "0"}, "PROFILES_WRITE_THREADS"),
        ({"PROFILES_WRITE_THREADS": "11"}, "PROFILES_WRITE_THREADS"),
        ({"PROFILES_WRITE_THREADS": "four"}, "PROFILES_WRITE_THREADS"),
        ({"SIGNED_USER_ATTRIBUTES": "a-b"}, "SIGNED_USER_ATTRIBUTES"),
        ({"SIGNED_USER_ATTRIBUTES": "pixel_relay_endpoint_id"}, "SIGNED_USER_ATTRIBUTES"),
        ({"PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN}"}, "PROFILES_CAMPAIGNS"),  # no trigger
        ({**TRIGGERED, "PROFILES_CAMPAIGNS": "purchase"}, "PROFILES_CAMPAIGNS"),
        (
            {
                **TRIGGERED,
                "PROFILES_CAMPAIGNS": "purchase=arn:aws:connect:us-east-1:123456789012:instance/x",
            },
            "PROFILES_CAMPAIGNS",
        ),
        ({**TRIGGERED, "PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN}/more"}, "PROFILES_CAMPAIGNS"),
        (
            {**TRIGGERED, "PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN}{'x' * 230}"},
            "PROFILES_CAMPAIGNS",
        ),
        (
            {**TRIGGERED, "PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN},signup={CAMPAIGN}"},
            "PROFILES_CAMPAIGNS",
        ),
        (
            {**TRIGGERED, "PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN},,signup={OTHER}"},
            "PROFILES_CAMPAIGNS",
        ),
        ({"PROFILES_TRIGGER_MAX_STARTS": "0"}, "PROFILES_TRIGGER_MAX_STARTS"),
        ({"PROFILES_TRIGGER_MAX_STARTS": "1001"}, "PROFILES_TRIGGER_MAX_STARTS"),
        ({"PROFILES_TRIGGER_PERIOD": "1 SECONDS"}, "PROFILES_TRIGGER_PERIOD"),
        ({"PROFILES_TRIGGER_PERIOD": "61 MINUTES"}, "PROFILES_TRIGGER_PERIOD"),
        ({"PROFILES_TRIGGER_PERIOD": "0 DAYS"}, "PROFILES_TRIGGER_PERIOD"),
        ({"PROFILES_TRIGGER_PERIOD": "a day"}, "PROFILES_TRIGGER_PERIOD"),
        ({"PROFILES_TRIGGER_EXPIRATION_SECONDS": "59"}, "PROFILES_TRIGGER_EXPIRATION_SECONDS"),
        ({"PROFILES_EVENTS_KEPT": "0"}, "PROFILES_EVENTS_KEPT"),
        ({"PROFILES_EVENTS_KEPT": "300"}, "PROFILES_EVENTS_KEPT"),  # over PROFILES_MAX_OBJECTS
        ({"PROFILES_MAX_OBJECTS": "1001"}, "PROFILES_MAX_OBJECTS"),
        ({"PROFILES_OBJECT_EXPIRATION_DAYS": "1099"}, "PROFILES_OBJECT_EXPIRATION_DAYS"),
    ],
)
def test_settings_errors_name_the_variable(changes: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**ENV, **changes})
    assert raised.value.variable == variable


def test_campaigns_limits_and_object_settings_are_read() -> None:
    settings = Settings.from_env(
        {
            **ENV,
            **TRIGGERED,
            "SIGNED_USER_ATTRIBUTES": "loyalty",
            "PROFILES_CAMPAIGNS": f" signup={OTHER} , purchase={CAMPAIGN}",
            "PROFILES_TRIGGER_MAX_STARTS": "2",
            "PROFILES_TRIGGER_PERIOD": "12 hours",
            "PROFILES_TRIGGER_EXPIRATION_SECONDS": "600",
            "PROFILES_EVENTS_KEPT": "50",
            "PROFILES_MAX_OBJECTS": "80",
            "PROFILES_OBJECT_EXPIRATION_DAYS": "30",
        }
    )
    assert [(c.event_type, c.arn, c.campaign_id) for c in settings.campaigns] == [
        ("purchase", CAMPAIGN, "c-1"),
        ("signup", OTHER, "c-2"),
    ]
    assert settings.trigger_limits == TriggerLimits(2, 12, "HOURS", 600)
    assert (settings.events_kept, settings.max_objects, settings.object_expiration_days) == (
        50,
        80,
        30,
    )
    # Signed-only attributes reach the profile too (the object type maps them).
    assert settings.user_attributes == {"plan", "tier", "loyalty"}
    # The defaults: one start per profile a day, none an hour late.
    assert Settings.from_env(ENV).trigger_limits == TriggerLimits(1, 1, "DAYS", 3600)


def test_a_campaign_error_names_the_setting_and_the_rule() -> None:
    with pytest.raises(ConfigError, match="PROFILES_CAMPAIGNS: 'purchase' has no event trigger"):
        Settings.from_env({**ENV, "PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN}"})
    with pytest.raises(ConfigError, match=r"CampaignArn|connectcampaignsv2"):
        Settings.from_env({**ENV, **TRIGGERED, "PROFILES_CAMPAIGNS": "purchase=arn:x"})


def test_the_trigger_limit_bounds_are_botocores() -> None:
    model = botocore.session.get_session().get_service_model("customer-profiles")
    period: Any = model.shape_for("Period")
    assert tuple(period.members["Unit"].enum) == settings_module.TRIGGER_PERIOD_UNITS
    assert period.members["Value"].metadata["max"] == settings_module.MAX_TRIGGER_PERIOD_VALUE
    most = period.members["MaxInvocationsPerProfile"].metadata["max"]
    assert most == settings_module.MAX_TRIGGER_MAX_STARTS


def test_registry_builds_it_without_calling_aws() -> None:
    built = registry.plugin("customer-profiles").configure(ENV).create()
    assert built.name == CustomerProfiles.name == "customer-profiles"


# The object -------------------------------------------------------------------------------


ADDED = ("object_id", "profile_attributes", "profile_endpoint_id", "ordered_at", "on_time")


def test_object_is_the_record_without_nulls_plus_key_and_profile_strings() -> None:
    event = make_event(1, user_attributes={"plan": ("gold", "silver"), "tier": ("a",)})
    obj = profile_object(event, now=datetime(2026, 11, 28, 11, 0, 1, tzinfo=UTC))
    record = event.to_record()
    assert {k: v for k, v in obj.items() if k not in ADDED} == {
        k: v for k, v in record.items() if v is not None
    }
    assert "session" not in obj
    assert "user_id" not in obj
    assert obj["user_attributes"] == {"plan": ["gold", "silver"], "tier": ["a"]}
    assert obj["profile_attributes"] == {
        "plan": "gold, silver",
        "tier": "a",
        "pixel_relay_endpoint_id": "ep-1",
    }
    assert obj["object_id"] == object_id(event)
    # An anonymous hit is keyed by its endpoint id, and ordered by its time.
    assert obj["profile_endpoint_id"] == "ep-1"
    assert obj["ordered_at"] == event.timestamp
    assert obj["on_time"] == "true"


def test_an_event_delivered_after_the_expiration_starts_no_campaign() -> None:
    event = make_event(1)  # happened 2026-11-28T11:00:00Z
    rules = ObjectRules(trigger_expiration_seconds=600)
    just_in = profile_object(event, rules, datetime(2026, 11, 28, 11, 10, tzinfo=UTC))
    late = profile_object(event, rules, datetime(2026, 11, 28, 11, 10, 1, tzinfo=UTC))
    assert (just_in["on_time"], late["on_time"]) == ("true", "false")
    # A replay days later is the same object (same unique key), marked late.
    assert just_in["object_id"] == late["object_id"]


def test_the_ordering_time_is_never_later_than_the_receive_time() -> None:
    # A message from an older pixel may carry a time ahead of its receive time.
    ahead = make_event(1, timestamp="2026-11-28T11:10:00.000Z")
    assert profile_object(ahead)["ordered_at"] == "2026-11-28T11:00:00.100Z"
    assert profile_object(make_event(1))["ordered_at"] == "2026-11-28T11:00:00.000Z"


def test_object_keeps_session_and_user_id_when_present() -> None:
    event = Event(
        "e-1",
        "view",
        "ep-1",
        "2026-11-28T11:00:00.000Z",
        "2026-11-28T11:00:00.000Z",
        session=Session("s-1", "2026-11-28T10:00:00.000Z"),
        profile=ProfileUpdate(user_id="u-1"),
    )
    obj = profile_object(event)
    assert obj["session"] == {"id": "s-1", "start": "2026-11-28T10:00:00.000Z"}
    assert obj["user_id"] == "u-1"


def test_object_id_is_stable_and_one_of_a_fixed_number_per_profile() -> None:
    assert object_id(make_event(1)) == object_id(make_event(1, event_type="other"))
    assert object_id(make_event(1)) != object_id(make_event(1, endpoint="ep-2"))
    # 1,500 events of one visitor take at most PROFILES_EVENTS_KEPT unique keys.
    ids = {object_id(make_event(n), 100) for n in range(1500)}
    assert 90 <= len(ids) <= 100
    assert len({object_id(make_event(n), 7) for n in range(1500)}) == 7
    # A signed hit is keyed by its user id: the same slots on whichever device.
    signed = [make_event(n, endpoint=f"ep-{n % 3}", user_id="u-1") for n in range(300)]
    assert len({object_id(event, 10) for event in signed}) == 10
    assert {profile_identity(event) for event in signed} == {("user", "u-1")}
    assert "profile_endpoint_id" not in profile_object(signed[0])


def test_profile_value_joins_whole_values_up_to_255_characters() -> None:
    assert profile_value(("gold",)) == "gold"
    assert profile_value(("", "gold", "")) == "gold"
    assert profile_value(("",)) is None
    assert profile_value(()) is None
    hundreds = tuple(str(i) * 100 for i in range(1, 4))
    assert profile_value(hundreds) == f"{hundreds[0]}, {hundreds[1]}"  # 202; a third: 304
    assert profile_value(("x" * 300,)) == "x" * 255


def test_a_user_attribute_with_only_empty_values_is_left_out() -> None:
    obj = profile_object(make_event(1, user_attributes={"plan": ("",), "tier": ("b",)}))
    assert obj["profile_attributes"] == {"tier": "b", "pixel_relay_endpoint_id": "ep-1"}


# The object type --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def put_object_type_shape() -> Any:
    model = botocore.session.get_session().get_service_model("customer-profiles")
    return model.operation_model("PutProfileObjectType").input_shape


def test_object_type_passes_botocores_model(put_object_type_shape: Any) -> None:
    definition = object_type_definition(Settings.from_env(ENV))
    report = ParamValidator().validate(definition, put_object_type_shape)
    assert not report.has_errors(), report.generate_report()


def test_object_type_keys_and_fields() -> None:
    definition = object_type_definition(Settings.from_env(ENV))
    assert definition["DomainName"] == "pixel-relay-dev"
    assert definition["ObjectTypeName"] == "PixelRelayEvent"
    assert definition["AllowProfileCreation"] is True
    assert (definition["ExpirationDays"], definition["MaxProfileObjectCount"]) == (365, 200)
    assert definition["Keys"] == {
        "pixelRelayEndpointId": [
            {"StandardIdentifiers": ["PROFILE"], "FieldNames": ["profile_endpoint_id"]}
        ],
        "pixelRelayUserId": [{"StandardIdentifiers": ["PROFILE"], "FieldNames": ["user_id"]}],
        "pixelRelayObjectId": [{"StandardIdentifiers": ["UNIQUE"], "FieldNames": ["object_id"]}],
    }
    assert definition["SourceLastUpdatedTimestampFormat"] == "yyyy-MM-dd'T'HH:mm:ss.SSSX"
    assert definition["Fields"]["sourceLastUpdatedTimestamp"] == {
        "Source": "_source.ordered_at",
        "ContentType": "STRING",
    }
    fields = definition["Fields"]
    assert fields["user.plan"] == {
        "Source": "_source.profile_attributes.plan",
        "Target": "_profile.Attributes.plan",
        "ContentType": "STRING",
    }
    assert fields["profile.pixel_relay_endpoint_id"]["Target"] == (
        "_profile.Attributes.pixel_relay_endpoint_id"
    )
    assert "Target" not in fields["endpoint_id"]
    assert "Target" not in fields["event_type"]
    assert all(spec["ContentType"] == "STRING" for spec in fields.values())
    named = {n for keys in definition["Keys"].values() for k in keys for n in k["FieldNames"]}
    assert named <= set(fields)


def test_every_field_source_reads_a_member_of_the_object() -> None:
    settings = Settings.from_env(ENV)
    event = Event(
        "e-1",
        "view",
        "ep-1",
        "2026-11-28T11:00:00.000Z",
        "2026-11-28T11:00:00.000Z",
        profile=ProfileUpdate(user_id="u-1", user_attributes={"plan": ("a",), "tier": ("b",)}),
    )
    # Every field is read from a signed hit's object or an anonymous one's.
    objects = [profile_object(event), profile_object(replace(event, profile=ProfileUpdate()))]
    for spec in object_type_definition(settings)["Fields"].values():
        found = []
        for obj in objects:
            node: Any = obj
            for part in spec["Source"].removeprefix("_source.").split("."):
                node = node.get(part) if isinstance(node, dict) else None
            found.append(node)
        assert any(isinstance(node, str) for node in found), spec


def test_object_type_without_allowed_attributes_maps_only_its_own() -> None:
    fields = object_type_definition(Settings.from_env({"PROFILES_DOMAIN": "d"}))["Fields"]
    assert not [name for name in fields if name.startswith("user.")]


# Calls ------------------------------------------------------------------------------------


def test_events_go_in_calls_of_up_to_ten_objects_and_are_delivered() -> None:
    client = FakeProfiles()
    events = [make_event(i, endpoint=f"ep-{i}") for i in range(1, 24)]
    outcomes = destination(client).deliver(events)
    assert all(o.verdict is Verdict.DELIVERED for o in outcomes)
    assert [o.profile for o in outcomes] == [None] * 23
    assert sorted(len(c["Items"]) for c in client.calls) == [3, 10, 10]
    assert {c["DomainName"] for c in client.calls} == {"pixel-relay-dev"}
    assert {c["ObjectTypeName"] for c in client.calls} == {"PixelRelayEvent"}
    assert sorted(o["event_id"] for o in client.objects) == sorted(e.event_id for e in events)


@pytest.mark.parametrize("seed", range(6))
def test_a_thousand_events_take_at_most_a_hundred_calls(seed: int) -> None:
    rng = random.Random(seed)
    endpoints = [f"ep-{n}" for n in range(rng.choice([1, 3, 17, 60, 400]))]
    client = FakeProfiles()
    target = destination(client)
    for batch in range(10):
        events = [
            make_event(batch * 100 + i, endpoint=rng.choice(endpoints), timestamp=instant(i))
            for i in range(100)
        ]
        assert all(o.verdict is Verdict.DELIVERED for o in target.deliver(events))
    assert len(client.calls) <= 100
    assert len(client.objects) == 1000


def test_item_results_are_read_one_by_one() -> None:
    answers: dict[str, ItemAnswer] = {
        "e-1": (429, "slow down"),
        "e-2": (500, "oops"),
        "e-3": (400, "bad field"),
        "e-4": (0, ""),  # the answer leaves it out
        "e-5": (404, "no such object type"),
    }
    client = FakeProfiles(item=lambda obj: answers.get(obj["event_id"]))
    outcomes = destination(client).deliver([make_event(i) for i in range(1, 7)])
    assert [(o.verdict, o.reason) for o in outcomes] == [
        (Verdict.RETRY, "BatchPutProfileObject item failed: 429"),
        (Verdict.RETRY, "BatchPutProfileObject item failed: 500"),
        (Verdict.REJECTED, "BatchPutProfileObject item failed: 400"),
        (Verdict.RETRY, "BatchPutProfileObject answered nothing for the object"),
        (Verdict.REJECTED, "BatchPutProfileObject item failed: 404"),
        (Verdict.DELIVERED, ""),
    ]
    assert len(client.calls) == 1


def test_unreadable_item_answers_are_retried() -> None:
    response = {
        "Successful": [{"Id": "2", "ProfileObjectUniqueKey": "k"}],
        "Failed": [{"Id": "0", "Code": "400", "Message": "m"}, {"Id": "1", "Code": 200}],
    }
    outcomes = delivery.item_outcomes(4, response)
    assert [o.verdict for o in outcomes] == [
        Verdict.RETRY,
        Verdict.RETRY,
        Verdict.DELIVERED,
        Verdict.RETRY,
    ]


def test_a_request_refused_for_its_content_is_split_until_the_object_stands_alone() -> None:
    error = client_error(400, "BadRequestException", "bad")
    client = FakeProfiles(request=failing_call("e-3", error))
    outcomes = destination(client).deliver([make_event(i) for i in range(1, 9)])
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED] * 2 + [Verdict.REJECTED] + [
        Verdict.DELIVERED
    ] * 5
    assert outcomes[2].reason == "BatchPutProfileObject refused: 400 BadRequestException"
    assert sorted(o["event_id"] for o in client.objects if o["event_id"] != "e-3") == sorted(
        f"e-{i}" for i in (1, 2, 4, 5, 6, 7, 8)
    )


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "ThrottlingException"),
        (404, "ResourceNotFoundException"),
        (403, "AccessDeniedException"),
    ],
)
def test_batch_wide_failures_retry_and_stop_sending(status: int, code: str) -> None:
    client = FakeProfiles(request=failing_call("e-1", client_error(status, code)))
    events = [make_event(i, endpoint=f"ep-{i}") for i in range(1, 31)]
    outcomes = destination(client, threads=1).deliver(events)
    assert all(o.verdict is Verdict.RETRY for o in outcomes)
    first = f"BatchPutProfileObject failed: {status} {code}"
    assert {o.reason for o in outcomes} == {first, f"not sent after {first}"}
    assert len(client.calls) == 1


def test_server_error_retries_that_calls_events_and_goes_on() -> None:
    error = client_error(500, "InternalServerException")
    client = FakeProfiles(request=failing_call("e-1", error))
    events = [make_event(i, endpoint=f"ep-{i}") for i in range(1, 21)]
    outcomes = destination(client).deliver(events)
    retried = [
        e.event_id for e, o in zip(events, outcomes, strict=True) if o.verdict is Verdict.RETRY
    ]
    assert len(retried) == 10
    assert "e-1" in retried
    assert {o.reason for o in outcomes if o.verdict is Verdict.RETRY} == {
        "BatchPutProfileObject failed: 500 InternalServerException"
    }
    assert len(client.calls) == 2


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
    ],
)
def test_network_failures_retry_and_stop_sending(error: Exception) -> None:
    client = FakeProfiles(request=failing_call("e-1", error))
    events = [make_event(i, endpoint=f"ep-{i}") for i in range(1, 21)]
    outcomes = destination(client, threads=1).deliver(events)
    assert all(o.verdict is Verdict.RETRY for o in outcomes)
    assert outcomes[0].reason == f"BatchPutProfileObject failed: {type(error).__name__}"
    assert len(client.calls) == 1


def test_object_over_the_service_limit_is_rejected_without_a_call() -> None:
    client = FakeProfiles()
    big = replace(make_event(1), attributes={f"a{i}": "x" * 200 for i in range(1300)})
    outcomes = destination(client).deliver([big, make_event(2)])
    assert outcomes[0].verdict is Verdict.REJECTED
    assert "accepts 256000" in outcomes[0].reason
    assert outcomes[1].verdict is Verdict.DELIVERED
    assert [o["event_id"] for o in client.objects] == ["e-2"]


def test_profile_update_fares_as_its_event() -> None:
    client = FakeProfiles(item=failing_item("e-2", 400, "bad"))
    events = [
        make_event(1, user_attributes={"plan": ("gold",)}),
        make_event(2, user_id="u-2"),
        make_event(3),
    ]
    outcomes = destination(client).deliver(events)
    assert outcomes[0].profile is Verdict.DELIVERED
    assert outcomes[0].profile_reason == ""
    assert outcomes[1].profile is Verdict.REJECTED
    assert outcomes[1].profile_reason == outcomes[1].reason
    assert outcomes[2].profile is None


# Order: the newest value wins --------------------------------------------------------------


def instant(second: int) -> str:
    return f"2026-11-28T11:{second // 60:02d}:{second % 60:02d}.000Z"


def test_a_profiles_objects_are_written_oldest_first() -> None:
    client = FakeProfiles()
    events = [
        make_event(1, timestamp=instant(30), user_attributes={"plan": ("gold",)}),
        make_event(2, endpoint="ep-2", timestamp=instant(5)),
        make_event(3, timestamp=instant(10), user_attributes={"plan": ("silver",)}),
    ]
    destination(client).deliver(events)
    mine = [o for o in client.objects if o["endpoint_id"] == "ep-1"]
    assert [o["event_id"] for o in mine] == ["e-3", "e-1"]


def test_a_profile_too_big_for_one_call_is_written_in_order_by_one_worker() -> None:
    """The profile's first call is slowed down: had its other calls been handed to other
    workers, they would overtake it (and run on other threads)."""
    busy = [make_event(i, timestamp=instant(100 - i)) for i in range(25)]  # newest first
    others = [make_event(100 + i, endpoint=f"ep-x{i}") for i in range(15)]
    mixed = [e for pair in zip(busy, others, strict=False) for e in pair] + busy[15:]
    oldest = busy[-1].event_id
    workers: list[int] = []  # the thread of each call carrying the profile's objects

    def request(objects: list[dict[str, Any]]) -> None:
        if any(obj["endpoint_id"] == "ep-1" for obj in objects):
            workers.append(threading.get_ident())
        if any(obj["event_id"] == oldest for obj in objects):
            time.sleep(0.3)  # the profile's first call: slow

    client = FakeProfiles(request=request, delay=0.01)
    outcomes = destination(client, threads=4).deliver(mixed)
    assert all(o.verdict is Verdict.DELIVERED for o in outcomes)
    written = [o["timestamp"] for o in client.objects if o["endpoint_id"] == "ep-1"]
    assert written == sorted(written)
    assert len(written) == 25
    assert len(workers) == 3  # 25 objects: three calls, all on one worker
    assert len(set(workers)) == 1
    assert len(client.calls) == 4


def test_one_users_devices_share_a_worker_and_are_ordered_together() -> None:
    events = [
        make_event(1, endpoint="phone", timestamp=instant(9), user_id="u-1"),
        make_event(2, endpoint="laptop", timestamp=instant(3), user_id="u-1"),
        make_event(3, endpoint="laptop", timestamp=instant(1)),
        make_event(4, endpoint="tablet", timestamp=instant(2)),  # anonymous: its own
    ]
    assert sorted(profile_groups(events)) == [[2, 1, 0], [3]]


# Time budget ------------------------------------------------------------------------------


def countdown(*values: int) -> Callable[[], int]:
    remaining: Iterator[int] = iter(values)
    return lambda: next(remaining)


def test_no_call_starts_without_a_calls_worth_of_time() -> None:
    client = FakeProfiles()
    events = [
        make_event(i, endpoint=f"ep-{i}", user_attributes={"plan": ("a",)}) for i in range(1, 26)
    ]
    outcomes = destination(client, budget_ms=10_000, threads=1).deliver(
        events, time_left=countdown(30_000, 10_000, 9_999)
    )
    verdicts = [o.verdict for o in outcomes]
    assert verdicts.count(Verdict.DELIVERED) == 20
    assert verdicts.count(Verdict.RETRY) == 5
    late = [o for o in outcomes if o.verdict is Verdict.RETRY]
    assert {o.reason for o in late} == {"out of time"}
    assert {o.profile for o in late} == {Verdict.RETRY}
    assert len(client.calls) == 2


def test_a_batch_of_100_at_300_ms_a_call_finishes_with_the_reserve_intact() -> None:
    """Lambda's default consumer timeout, the settlement reserve the consumer keeps for a
    batch of 100, and the call budget of the default read timeout: not one event may run
    out of time, and the writing must end well before the reserve is touched."""
    timeout_ms = consumer_timeout_seconds("dev") * 1000
    reserve = settlement_reserve_ms(100, 1, report_batch_item_failures=False)
    started = time.monotonic()

    def time_left() -> int:
        return timeout_ms - reserve - int((time.monotonic() - started) * 1000)

    rng = random.Random(7)
    events = [
        make_event(i, endpoint=f"ep-{rng.randrange(40)}", timestamp=instant(rng.randrange(60)))
        for i in range(100)
    ]
    client = FakeProfiles(delay=0.3)
    outcomes = destination(client, budget_ms=call_budget_ms(10)).deliver(events, time_left)
    out_of_time = [o for o in outcomes if o.reason == "out of time"]
    assert len(out_of_time) == 0
    assert all(o.verdict is Verdict.DELIVERED for o in outcomes)
    assert len(client.calls) == 10
    assert time_left() > call_budget_ms(10)  # another destination could still be called


def test_without_a_deadline_everything_is_sent() -> None:
    client = FakeProfiles()
    outcomes = destination(client, budget_ms=10**9).deliver([make_event(1), make_event(2)])
    assert all(o.verdict is Verdict.DELIVERED for o in outcomes)


def test_an_empty_batch_makes_no_call() -> None:
    client = FakeProfiles()
    assert destination(client).deliver([]) == []
    assert client.calls == []


# One event's bad field, or one surprise, costs only that event ----------------------------


def test_an_object_that_cannot_be_built_rejects_that_event_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = profile_object

    def picky(event: Event, *args: Any) -> dict[str, Any]:
        if event.event_id == "e-2":
            raise TypeError("a field the builder cannot take")
        return real(event, *args)

    monkeypatch.setattr(delivery, "profile_object", picky)
    client = FakeProfiles()
    outcomes = destination(client).deliver([make_event(1), make_event(2), make_event(3)])
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.REJECTED, Verdict.DELIVERED]
    assert outcomes[1].reason == "customer-profiles could not build the object: TypeError"
    assert sorted(o["event_id"] for o in client.objects) == ["e-1", "e-3"]


def test_an_object_botocore_refuses_is_rejected_and_the_rest_still_sent() -> None:
    error = ParamValidationError(report="Invalid length for parameter Object")
    client = FakeProfiles(request=failing_call("e-1", error))
    outcomes = destination(client).deliver([make_event(1), make_event(2), make_event(3)])
    assert outcomes[0].verdict is Verdict.REJECTED
    assert (
        outcomes[0].reason == "customer-profiles could not build the request: ParamValidationError"
    )
    assert [o.verdict for o in outcomes[1:]] == [Verdict.DELIVERED] * 2


def test_an_unexpected_exception_retries_that_calls_events_and_goes_on() -> None:
    client = FakeProfiles(request=failing_call("e-1", KeyError("surprise")))
    events = [make_event(i, endpoint=f"ep-{i}") for i in range(1, 12)]
    outcomes = destination(client).deliver(events)
    retried = [o for o in outcomes if o.verdict is Verdict.RETRY]
    assert {o.reason for o in retried} == {
        "customer-profiles BatchPutProfileObject failed: KeyError"
    }
    assert outcomes[0] in retried
    assert len(retried) in (1, 10)  # the call e-1 was in
    assert len(outcomes) - len(retried) == 11 - len(retried)


# Newest value wins, whatever order the service applies objects in -------------------------


def test_each_profile_attribute_travels_with_its_newest_event_of_the_batch() -> None:
    events = [
        make_event(1, timestamp=instant(3), user_attributes={"plan": ("gold",)}),
        make_event(2, timestamp=instant(1), user_attributes={"plan": ("old",), "tier": ("a",)}),
        make_event(3, timestamp=instant(2), user_id="u-1", user_attributes={"plan": ("x",)}),
        make_event(4, endpoint="ep-2", timestamp=instant(0), user_attributes={"plan": ("b",)}),
    ]
    client = FakeProfiles()
    destination(client).deliver(events)
    carried = {o["event_id"]: o["profile_attributes"] for o in client.objects}
    # ep-1's newest plan is event 1's; event 2 still brings tier, which nothing newer sets.
    assert carried["e-1"] == {"plan": "gold", "pixel_relay_endpoint_id": "ep-1"}
    assert carried["e-2"] == {"tier": "a"}
    # A signed hit writes the user's profile, another profile: its plan travels too.
    assert carried["e-3"] == {"plan": "x", "pixel_relay_endpoint_id": "ep-1"}
    assert carried["e-4"] == {"plan": "b", "pixel_relay_endpoint_id": "ep-2"}
    # The object keeps the event's own values whatever the profile gets.
    by_id = {o["event_id"]: o for o in client.objects}
    assert by_id["e-2"]["user_attributes"] == {"plan": ["old"], "tier": ["a"]}


def test_in_any_order_of_application_the_profile_ends_with_the_newest_values() -> None:
    """What the stand-in's worst case (arrival order wins, a batch applied backwards) does
    to a profile, for every permutation of one batch's objects."""
    import itertools

    events = [
        make_event(n, timestamp=instant(t), user_attributes=attrs)
        for n, (t, attrs) in enumerate(
            [
                (5, {"plan": ("p5",)}),
                (2, {"plan": ("p2",), "tier": ("t2",)}),
                (9, {"tier": ("t9",)}),
                (1, {"plan": ("p1",), "tier": ("t1",)}),
            ]
        )
    ]
    client = FakeProfiles()
    destination(client).deliver(events)
    for order in itertools.permutations(client.objects):
        profile: dict[str, str] = {}
        for obj in order:
            profile.update(obj["profile_attributes"])
        assert (profile["plan"], profile["tier"]) == ("p5", "t9")
