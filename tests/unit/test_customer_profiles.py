"""The Customer Profiles destination: settings, the object, the object type and every outcome."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import replace
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

from chalicelib.config import ConfigError
from chalicelib.destinations import customer_profiles, registry
from chalicelib.destinations.base import Verdict
from chalicelib.destinations.customer_profiles import (
    CustomerProfilesDestination,
    Settings,
    object_id,
    object_type_definition,
    profile_object,
    profile_value,
)
from chalicelib.events import Event, ProfileUpdate, Session
from tests.factories import numbered_event

ENV = {"PROFILES_DOMAIN": "pixel-relay-dev", "ALLOWED_USER_ATTRIBUTES": "plan,tier"}


# Received 100 ms after the hit.
make_event = partial(numbered_event, received_at="2026-11-28T11:00:00.100Z")


def client_error(status: int, code: str, message: str = "m") -> ClientError:
    response: Any = {
        "Error": {"Code": code, "Message": message},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, "PutProfileObject")


class FakeProfiles:
    """Records PutProfileObject calls; `answer` may raise for an object."""

    def __init__(self, answer: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.calls: list[dict[str, Any]] = []
        self.answer = answer or (lambda obj: None)

    def put_profile_object(self, *, DomainName: str, ObjectTypeName: str, Object: str):  # noqa: N803
        self.calls.append(
            {"DomainName": DomainName, "ObjectTypeName": ObjectTypeName, "Object": Object}
        )
        self.answer(json.loads(Object))
        return {"ProfileObjectUniqueKey": "k"}

    @property
    def objects(self) -> list[dict[str, Any]]:
        return [json.loads(call["Object"]) for call in self.calls]


def destination(client: FakeProfiles, budget_ms: int = 0) -> CustomerProfilesDestination:
    return CustomerProfilesDestination(client, "pixel-relay-dev", "PixelRelayEvent", budget_ms)


def failing_for(event_id: str, error: Exception) -> Callable[[dict[str, Any]], None]:
    def answer(obj: dict[str, Any]) -> None:
        if obj["event_id"] == event_id:
            raise error

    return answer


# Settings ---------------------------------------------------------------------------------


def test_settings_defaults_and_allowlist() -> None:
    settings = Settings.from_env(ENV)
    assert settings == Settings(
        domain="pixel-relay-dev",
        object_type="PixelRelayEvent",
        timeout_seconds=10,
        user_attributes=frozenset({"plan", "tier"}),
    )


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
    ],
)
def test_settings_errors_name_the_variable(changes: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as raised:
        Settings.from_env({**ENV, **changes})
    assert raised.value.variable == variable


def test_registry_builds_it_without_calling_aws() -> None:
    settings = registry.settings_for(("customer-profiles",), ENV)["customer-profiles"]
    built = registry.create("customer-profiles", settings)
    assert built.name == customer_profiles.NAME == "customer-profiles"


# The object -------------------------------------------------------------------------------


def test_object_is_the_record_without_nulls_plus_key_and_profile_strings() -> None:
    event = make_event(1, user_attributes={"plan": ("gold", "silver"), "tier": ("a",)})
    obj = profile_object(event)
    record = event.to_record()
    assert {k: v for k, v in obj.items() if k not in ("object_id", "profile_attributes")} == {
        k: v for k, v in record.items() if v is not None
    }
    assert "session" not in obj
    assert "user_id" not in obj
    assert obj["user_attributes"] == {"plan": ["gold", "silver"], "tier": ["a"]}
    assert obj["profile_attributes"] == {"plan": "gold, silver", "tier": "a"}
    assert obj["object_id"] == object_id(event)


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


def test_object_id_is_stable_and_scoped_to_the_endpoint() -> None:
    assert object_id(make_event(1)) == object_id(make_event(1, event_type="other"))
    assert object_id(make_event(1)) != object_id(make_event(1, endpoint="ep-2"))
    assert object_id(make_event(1)) != object_id(make_event(2))


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
    assert obj["profile_attributes"] == {"tier": "b"}


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
    assert definition["Keys"] == {
        "pixelRelayEndpointId": [
            {"StandardIdentifiers": ["PROFILE"], "FieldNames": ["endpoint_id"]}
        ],
        "pixelRelayObjectId": [{"StandardIdentifiers": ["UNIQUE"], "FieldNames": ["object_id"]}],
    }
    fields = definition["Fields"]
    assert fields["user.plan"] == {
        "Source": "_source.profile_attributes.plan",
        "Target": "_profile.Attributes.plan",
        "ContentType": "STRING",
    }
    assert fields["endpoint_id"]["Target"] == "_profile.Attributes.pixel_relay_endpoint_id"
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
    obj = profile_object(event)
    for spec in object_type_definition(settings)["Fields"].values():
        node: Any = obj
        for part in spec["Source"].removeprefix("_source.").split("."):
            node = node[part]
        assert isinstance(node, str)


def test_object_type_without_allowed_attributes_maps_only_its_own() -> None:
    fields = object_type_definition(Settings.from_env({"PROFILES_DOMAIN": "d"}))["Fields"]
    assert not [name for name in fields if name.startswith("user.")]


# Outcomes ---------------------------------------------------------------------------------


def test_every_event_is_one_call_and_delivered() -> None:
    client = FakeProfiles()
    events = [make_event(1), make_event(2, endpoint="ep-2")]
    outcomes = destination(client).deliver(events)
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.DELIVERED]
    assert [o.profile for o in outcomes] == [None, None]
    assert [c["DomainName"] for c in client.calls] == ["pixel-relay-dev"] * 2
    assert [c["ObjectTypeName"] for c in client.calls] == ["PixelRelayEvent"] * 2
    assert [o["event_id"] for o in client.objects] == ["e-1", "e-2"]


def test_bad_request_rejects_that_event_only() -> None:
    client = FakeProfiles(failing_for("e-2", client_error(400, "BadRequestException", "bad")))
    outcomes = destination(client).deliver([make_event(1), make_event(2), make_event(3)])
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.REJECTED, Verdict.DELIVERED]
    assert outcomes[1].reason == "PutProfileObject refused: 400 BadRequestException bad"
    assert len(client.calls) == 3


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (429, "ThrottlingException"),
        (404, "ResourceNotFoundException"),
        (403, "AccessDeniedException"),
    ],
)
def test_batch_wide_failures_retry_and_stop_sending(status: int, code: str) -> None:
    client = FakeProfiles(failing_for("e-1", client_error(status, code)))
    outcomes = destination(client).deliver([make_event(1), make_event(2)])
    assert [o.verdict for o in outcomes] == [Verdict.RETRY, Verdict.RETRY]
    assert outcomes[0].reason == f"PutProfileObject failed: {status} {code}"
    assert outcomes[1].reason == f"not sent after PutProfileObject failed: {status} {code}"
    assert len(client.calls) == 1


def test_server_error_retries_that_event_and_goes_on() -> None:
    client = FakeProfiles(failing_for("e-1", client_error(500, "InternalServerException")))
    outcomes = destination(client).deliver([make_event(1), make_event(2)])
    assert [o.verdict for o in outcomes] == [Verdict.RETRY, Verdict.DELIVERED]
    assert outcomes[0].reason == "PutProfileObject failed: 500 InternalServerException"
    assert len(client.calls) == 2


@pytest.mark.parametrize(
    "error",
    [
        EndpointConnectionError(endpoint_url="http://127.0.0.1:9"),
        ReadTimeoutError(endpoint_url="http://127.0.0.1:9"),
    ],
)
def test_network_failures_retry_and_stop_sending(error: Exception) -> None:
    client = FakeProfiles(failing_for("e-1", error))
    outcomes = destination(client).deliver([make_event(1), make_event(2)])
    assert [o.verdict for o in outcomes] == [Verdict.RETRY, Verdict.RETRY]
    assert outcomes[0].reason == f"PutProfileObject failed: {type(error).__name__}"
    assert len(client.calls) == 1


def test_object_over_the_service_limit_is_rejected_without_a_call() -> None:
    client = FakeProfiles()
    big = replace(make_event(1), attributes={f"a{i}": "x" * 200 for i in range(1300)})
    outcomes = destination(client).deliver([big, make_event(2)])
    assert outcomes[0].verdict is Verdict.REJECTED
    assert "accepts 256000" in outcomes[0].reason
    assert outcomes[1].verdict is Verdict.DELIVERED
    assert len(client.calls) == 1


def test_profile_update_fares_as_its_event() -> None:
    client = FakeProfiles(failing_for("e-2", client_error(400, "BadRequestException", "bad")))
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


# Time budget ------------------------------------------------------------------------------


def countdown(*values: int) -> Callable[[], int]:
    remaining: Iterator[int] = iter(values)
    return lambda: next(remaining)


def test_no_call_starts_without_a_calls_worth_of_time() -> None:
    client = FakeProfiles()
    events = [make_event(i, user_attributes={"plan": ("a",)}) for i in range(1, 5)]
    outcomes = destination(client, budget_ms=10_000).deliver(
        events, time_left=countdown(30_000, 10_000, 9_999)
    )
    assert [o.verdict for o in outcomes] == [
        Verdict.DELIVERED,
        Verdict.DELIVERED,
        Verdict.RETRY,
        Verdict.RETRY,
    ]
    assert outcomes[2].reason == outcomes[3].reason == "out of time"
    assert outcomes[3].profile is Verdict.RETRY
    assert [o["event_id"] for o in client.objects] == ["e-1", "e-2"]


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
    real = customer_profiles.profile_object

    def picky(event: Event) -> dict[str, Any]:
        if event.event_id == "e-2":
            raise TypeError("a field the builder cannot take")
        return real(event)

    monkeypatch.setattr(customer_profiles, "profile_object", picky)
    client = FakeProfiles()
    outcomes = destination(client).deliver([make_event(1), make_event(2), make_event(3)])
    assert [o.verdict for o in outcomes] == [Verdict.DELIVERED, Verdict.REJECTED, Verdict.DELIVERED]
    assert outcomes[1].reason == "customer-profiles could not build the object: TypeError"
    assert [o["event_id"] for o in client.objects] == ["e-1", "e-3"]


def test_an_object_botocore_refuses_is_rejected_and_the_rest_still_sent() -> None:
    error = ParamValidationError(report="Invalid length for parameter Object")
    client = FakeProfiles(failing_for("e-1", error))
    outcomes = destination(client).deliver([make_event(1), make_event(2)])
    assert outcomes[0].verdict is Verdict.REJECTED
    assert (
        outcomes[0].reason == "customer-profiles could not build the request: ParamValidationError"
    )
    assert outcomes[1].verdict is Verdict.DELIVERED


def test_an_unexpected_exception_retries_that_event_and_goes_on() -> None:
    client = FakeProfiles(failing_for("e-1", KeyError("surprise")))
    outcomes = destination(client).deliver([make_event(1), make_event(2)])
    assert (outcomes[0].verdict, outcomes[0].reason) == (
        Verdict.RETRY,
        "customer-profiles PutProfileObject failed: KeyError",
    )
    assert outcomes[1].verdict is Verdict.DELIVERED
