"""The stand-ins' operations for forgetting a visitor, driven by real boto3 clients over
loopback: Customer Profiles' SearchProfiles, ListProfileObjects, DeleteProfileObject and
DeleteProfile; Pinpoint's DeleteEndpoint and DeleteUserEndpoints."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.destinations.customer_profiles.object_type import (
    PROFILE_KEY,
    USER_PROFILE_KEY,
    profile_object,
)
from chalicelib.destinations.customer_profiles.settings import Settings
from chalicelib.events import Event, ProfileUpdate
from devtools.deploy.profiles_setup import ensure_object_type
from devtools.standins.customer_profiles import ProfilesStandIn
from devtools.standins.pinpoint import PinpointStandIn
from tests.factories import numbered_event

DOMAIN = "pixel-relay-test"
SETTINGS = Settings.from_env({"PROFILES_DOMAIN": DOMAIN})
TYPE = SETTINGS.object_type
APP = "app-1"


def client(service: str, url: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"total_max_attempts": 1}),
    )


@pytest.fixture
def profiles() -> Iterator[tuple[ProfilesStandIn, Any]]:
    with ProfilesStandIn(domains=[DOMAIN]) as standin:
        profiles_client = client("customer-profiles", standin.url)
        ensure_object_type(profiles_client, SETTINGS)
        yield standin, profiles_client


def put(profiles_client: Any, event: Event) -> None:
    profiles_client.put_profile_object(
        DomainName=DOMAIN, ObjectTypeName=TYPE, Object=json.dumps(profile_object(event))
    )


def event(n: int, endpoint: str, user: str | None = None) -> Event:
    return replace(numbered_event(n, endpoint), profile=ProfileUpdate(user_id=user))


def search(profiles_client: Any, key: str, value: str, **more: Any) -> dict[str, Any]:
    answer: dict[str, Any] = profiles_client.search_profiles(
        DomainName=DOMAIN, KeyName=key, Values=[value], **more
    )
    return answer


# Customer Profiles --------------------------------------------------------------------------


def test_a_key_of_the_object_type_finds_the_profile_it_tied_objects_to(
    profiles: tuple[ProfilesStandIn, Any],
) -> None:
    _, profiles_client = profiles
    put(profiles_client, event(1, "E1"))
    put(profiles_client, event(2, "E2", user="U1"))
    # Both keys find a profile: the object goes to the first (E1's), and U1 stays U1's.
    put(profiles_client, event(3, "E1", user="U1"))
    [by_endpoint] = search(profiles_client, PROFILE_KEY, "E1")["Items"]
    [by_user] = search(profiles_client, USER_PROFILE_KEY, "U1")["Items"]
    assert by_endpoint["FoundByItems"] == [{"KeyName": PROFILE_KEY, "Values": ["E1"]}]
    assert by_user["ProfileId"] != by_endpoint["ProfileId"]
    assert search(profiles_client, PROFILE_KEY, "nobody")["Items"] == []
    both = profiles_client.search_profiles(
        DomainName=DOMAIN,
        KeyName=PROFILE_KEY,
        Values=["E1"],
        AdditionalSearchKeys=[{"KeyName": USER_PROFILE_KEY, "Values": ["U1"]}],
        LogicalOperator="AND",
    )["Items"]
    assert both == []  # no one profile has both keys (the first object's profile kept E1)


def test_search_and_list_answer_in_pages(profiles: tuple[ProfilesStandIn, Any]) -> None:
    _, profiles_client = profiles
    for n in range(5):
        put(profiles_client, event(n, "E1"))
    [profile] = search(profiles_client, PROFILE_KEY, "E1")["Items"]
    listed: list[str] = []
    token: dict[str, str] = {}
    pages = 0
    while True:
        page = profiles_client.list_profile_objects(
            DomainName=DOMAIN,
            ObjectTypeName=TYPE,
            ProfileId=profile["ProfileId"],
            MaxResults=2,
            **token,
        )
        pages += 1
        listed += [json.loads(item["Object"])["event_id"] for item in page["Items"]]
        if "NextToken" not in page:
            break
        token = {"NextToken": page["NextToken"]}
    assert sorted(listed) == [f"e-{n}" for n in range(5)]
    assert pages == 3


def test_objects_deleted_one_by_one_then_the_profile_with_its_keys(
    profiles: tuple[ProfilesStandIn, Any],
) -> None:
    standin, profiles_client = profiles
    put(profiles_client, event(1, "E1"))
    put(profiles_client, event(2, "E1"))
    put(profiles_client, event(3, "E9"))  # someone else
    [profile] = search(profiles_client, PROFILE_KEY, "E1")["Items"]
    profile_id = profile["ProfileId"]
    items = profiles_client.list_profile_objects(
        DomainName=DOMAIN, ObjectTypeName=TYPE, ProfileId=profile_id
    )["Items"]
    assert len(items) == 2
    profiles_client.delete_profile_object(
        DomainName=DOMAIN,
        ObjectTypeName=TYPE,
        ProfileId=profile_id,
        ProfileObjectUniqueKey=items[0]["ProfileObjectUniqueKey"],
    )
    with pytest.raises(ClientError) as gone:  # deleted already
        profiles_client.delete_profile_object(
            DomainName=DOMAIN,
            ObjectTypeName=TYPE,
            ProfileId=profile_id,
            ProfileObjectUniqueKey=items[0]["ProfileObjectUniqueKey"],
        )
    assert gone.value.response["Error"]["Code"] == "ResourceNotFoundException"
    assert len(standin.stored_objects(DOMAIN, TYPE)) == 2
    # "Deletes the standard customer profile and all data pertaining to the profile."
    profiles_client.delete_profile(DomainName=DOMAIN, ProfileId=profile_id)
    assert [o["endpoint_id"] for o in standin.stored_objects(DOMAIN, TYPE)] == ["E9"]
    assert search(profiles_client, PROFILE_KEY, "E1")["Items"] == []
    assert standin.profile(DOMAIN, PROFILE_KEY, "E9") is not None
    with pytest.raises(ClientError) as unknown:
        profiles_client.delete_profile(DomainName=DOMAIN, ProfileId=profile_id)
    assert unknown.value.response["ResponseMetadata"]["HTTPStatusCode"] == 404
    # The endpoint id's next event makes a new profile, as for anyone new.
    put(profiles_client, event(4, "E1"))
    [again] = search(profiles_client, PROFILE_KEY, "E1")["Items"]
    assert again["ProfileId"] != profile_id


def test_requests_the_model_refuses_are_refused(profiles: tuple[ProfilesStandIn, Any]) -> None:
    standin, _ = profiles
    unvalidated = boto3.client(
        "customer-profiles",
        endpoint_url=standin.url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(parameter_validation=False, retries={"total_max_attempts": 1}),
    )
    with pytest.raises(ClientError) as missing:
        unvalidated.delete_profile(DomainName=DOMAIN)  # ProfileId is required
    assert missing.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as page:
        unvalidated.search_profiles(
            DomainName=DOMAIN, KeyName=PROFILE_KEY, Values=["E"], MaxResults=0
        )
    assert page.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    with pytest.raises(ClientError) as token:
        unvalidated.search_profiles(
            DomainName=DOMAIN, KeyName=PROFILE_KEY, Values=["E"], NextToken="forged"
        )
    assert token.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


def test_an_object_filter_is_refused_on_a_custom_object_type(
    profiles: tuple[ProfilesStandIn, Any],
) -> None:
    _, profiles_client = profiles
    put(profiles_client, event(1, "E1"))
    [profile] = search(profiles_client, PROFILE_KEY, "E1")["Items"]
    with pytest.raises(ClientError) as refused:
        profiles_client.list_profile_objects(
            DomainName=DOMAIN,
            ObjectTypeName=TYPE,
            ProfileId=profile["ProfileId"],
            ObjectFilter={"KeyName": "_orderId", "Values": ["1"]},
        )
    assert refused.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400


# Pinpoint -------------------------------------------------------------------------------------


def put_events(pinpoint: Any, endpoint: str, user: str | None = None) -> None:
    endpoint_data = {"User": {"UserId": user}} if user else {}
    pinpoint.put_events(
        ApplicationId=APP,
        EventsRequest={
            "BatchItem": {
                endpoint: {
                    "Endpoint": endpoint_data,
                    "Events": {
                        "e-1": {"EventType": "view", "Timestamp": "2026-11-28T11:00:00.000Z"}
                    },
                }
            }
        },
    )


def test_pinpoint_deletes_an_endpoint_and_a_users_endpoints() -> None:
    with PinpointStandIn(applications=[APP], validate_model=True) as standin:
        pinpoint = client("pinpoint", standin.url)
        put_events(pinpoint, "E1", user="U1")
        put_events(pinpoint, "E2", user="U1")
        put_events(pinpoint, "E3")
        put_events(pinpoint, "E4", user="U2")
        deleted = pinpoint.delete_endpoint(ApplicationId=APP, EndpointId="E3")
        assert deleted["EndpointResponse"]["Id"] == "E3"
        answer = pinpoint.delete_user_endpoints(ApplicationId=APP, UserId="U1")
        assert sorted(i["Id"] for i in answer["EndpointsResponse"]["Item"]) == ["E1", "E2"]
        assert standin.endpoints(APP) == {"E4": "U2"}
        for call, arguments in (
            (pinpoint.delete_endpoint, {"EndpointId": "E3"}),
            (pinpoint.delete_user_endpoints, {"UserId": "U1"}),
        ):
            with pytest.raises(ClientError) as gone:
                call(ApplicationId=APP, **arguments)
            assert gone.value.response["Error"]["Code"] == "NotFoundException"


def test_pinpoint_deletes_fail_on_purpose_and_succeed_on_the_retry() -> None:
    with PinpointStandIn(applications=[APP]) as standin:
        pinpoint = client("pinpoint", standin.url)
        put_events(pinpoint, "E1")
        standin.fail_next_requests(429)
        with pytest.raises(ClientError) as throttled:
            pinpoint.delete_endpoint(ApplicationId=APP, EndpointId="E1")
        assert throttled.value.response["ResponseMetadata"]["HTTPStatusCode"] == 429
        assert "E1" in standin.endpoints(APP)
        pinpoint.delete_endpoint(ApplicationId=APP, EndpointId="E1")
        assert standin.endpoints(APP) == {}
