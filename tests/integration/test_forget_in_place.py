"""`forget` where pixel-relay's destinations erase in place, over real HTTP against the
stand-ins: Customer Profiles deletes the visitor's profile and objects (and no one else's),
Pinpoint the visitor's endpoints; a second call finds nothing and says so; a failure says
what failed and whether running again can fix it."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace

import boto3
import pytest
from botocore.config import Config

from chalicelib.destinations.base import Visitor
from chalicelib.destinations.customer_profiles.delivery import CustomerProfilesDestination
from chalicelib.destinations.customer_profiles.object_type import PROFILE_KEY, USER_PROFILE_KEY
from chalicelib.destinations.customer_profiles.settings import Settings
from chalicelib.destinations.pinpoint import PinpointDestination
from chalicelib.events import Event, ProfileUpdate
from chalicelib.outcomes import Verdict
from devtools.deploy.profiles_setup import ensure_object_type
from devtools.standins.customer_profiles import ProfilesStandIn
from devtools.standins.pinpoint import PinpointStandIn
from tests.factories import numbered_event

DOMAIN = "pixel-relay-test"
SETTINGS = Settings.from_env({"PROFILES_DOMAIN": DOMAIN})
APP = "app-1"
CONFIG = Config(retries={"mode": "standard", "total_max_attempts": 1})


def event(n: int, endpoint: str, user: str | None = None) -> Event:
    return replace(numbered_event(n, endpoint), profile=ProfileUpdate(user_id=user))


@pytest.fixture
def profiles() -> Iterator[tuple[ProfilesStandIn, CustomerProfilesDestination]]:
    with ProfilesStandIn(domains=[DOMAIN]) as standin:
        client = boto3.client("customer-profiles", endpoint_url=standin.url, config=CONFIG)
        ensure_object_type(client, SETTINGS)
        yield standin, CustomerProfilesDestination(client, DOMAIN, SETTINGS.object_type)


def test_customer_profiles_forgets_a_user_with_every_object_and_only_theirs(
    profiles: tuple[ProfilesStandIn, CustomerProfilesDestination],
) -> None:
    standin, destination = profiles
    outcomes = destination.deliver(
        [
            event(1, "E1", user="U1"),
            event(2, "E1"),
            event(3, "E2", user="U1"),  # another device of U1's
            event(4, "F1"),  # someone else
        ]
    )
    assert all(o.verdict is Verdict.DELIVERED for o in outcomes)
    outcome = destination.forget(Visitor(user_id="U1"))
    assert outcome.verdict is Verdict.DELIVERED
    # The user's profile holds every signed-in event of theirs, from both devices; E1's
    # anonymous event is on E1's own profile (one PROFILE key per object), kept until E1 is
    # given too (docs/erasure.md).
    assert outcome.reason == "2 object(s) and 1 profile(s) deleted"
    stored = standin.stored_objects(DOMAIN, SETTINGS.object_type)
    assert sorted(o["endpoint_id"] for o in stored) == ["E1", "F1"]
    assert standin.profile(DOMAIN, USER_PROFILE_KEY, "U1") is None
    assert standin.profile(DOMAIN, PROFILE_KEY, "F1") is not None
    # The object deletes came first, each answered, then the profile's.
    operations = [r.operation for r in standin.requests if r.operation != "BatchPutProfileObject"]
    assert operations[-4:] == [
        "ListProfileObjects",
        "DeleteProfileObject",
        "DeleteProfileObject",
        "DeleteProfile",
    ]
    device = destination.forget(Visitor(endpoint_id="E1"))
    assert device.reason == "1 object(s) and 1 profile(s) deleted"
    assert [o["endpoint_id"] for o in standin.stored_objects(DOMAIN, SETTINGS.object_type)] == [
        "F1"
    ]
    assert standin.profile(DOMAIN, PROFILE_KEY, "E1") is None
    again = destination.forget(Visitor(user_id="U1"))
    assert (again.verdict, again.reason) == (
        Verdict.DELIVERED,
        "nothing left: no profile found by pixelRelayUserId",
    )


def test_customer_profiles_forgets_an_endpoint_and_reruns_find_nothing(
    profiles: tuple[ProfilesStandIn, CustomerProfilesDestination],
) -> None:
    standin, destination = profiles
    destination.deliver([event(n, "E1") for n in range(25)])
    # Two events may share one of the profile's slots (PROFILES_EVENTS_KEPT): count objects.
    kept = len(standin.stored_objects(DOMAIN, SETTINGS.object_type))
    assert kept > 20  # more than a page of 20
    outcome = destination.forget(Visitor(endpoint_id="E1"))
    assert outcome.reason == f"{kept} object(s) and 1 profile(s) deleted"
    assert standin.stored_objects(DOMAIN, SETTINGS.object_type) == []
    deletes = [r for r in standin.requests if r.operation.startswith("Delete")]
    again = destination.forget(Visitor(endpoint_id="E1"))
    assert again.reason == "nothing left: no profile found by pixelRelayEndpointId"
    assert [r for r in standin.requests if r.operation.startswith("Delete")] == deletes


@pytest.mark.parametrize(
    ("status", "verdict"), [(403, Verdict.REJECTED), (429, Verdict.RETRY), (500, Verdict.RETRY)]
)
def test_customer_profiles_failures_name_the_call_and_delete_nothing(
    profiles: tuple[ProfilesStandIn, CustomerProfilesDestination], status: int, verdict: Verdict
) -> None:
    standin, destination = profiles
    destination.deliver([event(1, "E1")])
    standin.fail_next_requests(status, operation="ListProfileObjects")
    outcome = destination.forget(Visitor(endpoint_id="E1"))
    assert outcome.verdict is verdict
    assert outcome.reason.startswith(f"ListProfileObjects failed: {status}")
    assert len(standin.stored_objects(DOMAIN, SETTINGS.object_type)) == 1
    assert destination.forget(Visitor(endpoint_id="E1")).verdict is Verdict.DELIVERED
    assert standin.stored_objects(DOMAIN, SETTINGS.object_type) == []


def test_pinpoint_deletes_the_endpoint_and_the_users_endpoints_then_finds_none() -> None:
    with PinpointStandIn(applications=[APP], validate_model=True) as standin:
        client = boto3.client("pinpoint", endpoint_url=standin.url, config=CONFIG)
        destination = PinpointDestination(client, APP)
        destination.deliver(
            [event(1, "E1", user="U1"), event(2, "E2", user="U1"), event(3, "E3"), event(4, "F1")]
        )
        user = destination.forget(Visitor(user_id="U1"))
        assert (user.verdict, user.reason) == (
            Verdict.DELIVERED,
            "2 endpoint(s) of the user deleted",
        )
        endpoint = destination.forget(Visitor(endpoint_id="E3"))
        assert endpoint.reason == "endpoint deleted"
        assert standin.endpoints(APP) == {"F1": None}
        both = destination.forget(Visitor(endpoint_id="E3", user_id="U1"))
        assert (
            both.reason == "nothing left: no such endpoint; nothing left: no endpoint of the user"
        )
        standin.fail_next_requests(403)
        refused = destination.forget(Visitor(endpoint_id="F1"))
        assert (refused.verdict, refused.reason) == (
            Verdict.REJECTED,
            "DeleteEndpoint failed: 403 ForbiddenException",
        )
        assert json.dumps(standin.endpoints(APP)) == '{"F1": null}'
