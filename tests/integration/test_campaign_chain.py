"""From a delivered event to a Connect outbound campaign, on one laptop: the destination's
real client writes to the Customer Profiles stand-in, set up by `make profiles-setup`'s own
functions (object type, triggers with limits, one integration per campaign); a fired trigger
makes the stand-in start the linked campaign on the campaigns stand-in. Both stand-ins take
the worst AWS's documentation allows where it is silent (docs/destinations/customer-profiles.md)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from typing import Any

import boto3
import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from chalicelib.destinations.customer_profiles.delivery import CustomerProfilesDestination
from chalicelib.destinations.customer_profiles.object_type import (
    ObjectRules,
    object_type_definition,
    profile_object,
)
from chalicelib.destinations.customer_profiles.settings import Settings
from chalicelib.outcomes import Verdict
from devtools.deploy.profiles_setup import (
    ensure_event_triggers,
    ensure_integrations,
    ensure_object_type,
)
from devtools.standins import campaigns as campaigns_module
from devtools.standins.campaigns import CampaignsStandIn
from devtools.standins.customer_profiles import ProfilesStandIn
from tests.factories import numbered_event

DOMAIN = "pixel-relay-chain"
CAMPAIGN = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/thank-you"
DOMAIN_ARN = f"arn:aws:profile:us-east-1:123456789012:domains/{DOMAIN}"
# Events happen now (ten minutes ago): the stand-in judges EventExpiration on its own clock.
HAPPENED = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=10)
ENV = {
    "PROFILES_DOMAIN": DOMAIN,
    "ALLOWED_USER_ATTRIBUTES": "plan",
    "SIGNED_USER_ATTRIBUTES": "loyalty",
    "PROFILES_TRIGGER_EVENTS": "purchase,signup",
    "PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN}",
}


def instant(second: int) -> str:
    return (
        (HAPPENED + timedelta(seconds=second))
        .isoformat(timespec="milliseconds")
        .replace("+00:00", "Z")
    )


def client(service: str, url: str) -> Any:
    return boto3.client(  # type: ignore[call-overload]
        service,
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        config=Config(retries={"mode": "standard", "total_max_attempts": 3}),
    )


@dataclass
class Chain:
    profiles: ProfilesStandIn
    campaigns: CampaignsStandIn
    settings: Settings
    now: datetime = HAPPENED + timedelta(seconds=5)

    def destination(self) -> CustomerProfilesDestination:
        return CustomerProfilesDestination(
            client("customer-profiles", self.profiles.url),
            self.settings.domain,
            self.settings.object_type,
            rules=ObjectRules.of(self.settings),
            clock=lambda: self.now,
        )

    def profile(self, endpoint: str) -> dict[str, Any]:
        found = self.profiles.profile(DOMAIN, "pixelRelayEndpointId", endpoint)
        assert found is not None
        return found

    def verdicts(self, event_id: str) -> list[dict[str, Any]]:
        [accepted] = [a for a in self.profiles.accepted_objects if a.object["event_id"] == event_id]
        return [verdict.to_json() for verdict in accepted.fired_triggers]


def set_up(environment: dict[str, str]) -> Iterator[Chain]:
    settings = Settings.from_env(environment)
    with (
        CampaignsStandIn() as campaigns,
        ProfilesStandIn(domains=[DOMAIN], campaigns_url=campaigns.url) as profiles,
    ):
        setup = client("customer-profiles", profiles.url)
        ensure_object_type(setup, settings)
        ensure_event_triggers(setup, settings)
        ensure_integrations(setup, settings)
        campaigns.add_campaign(CAMPAIGN, "Thank you", domain_arn=DOMAIN_ARN)
        yield Chain(profiles, campaigns, settings)


@pytest.fixture
def chain() -> Iterator[Chain]:
    yield from set_up(ENV)


make_event = partial(numbered_event, timestamp=instant(0), received_at=instant(0))


def test_a_purchase_reaches_the_campaign_once_inside_the_limit(chain: Chain) -> None:
    sender = chain.destination()
    [first] = sender.deliver([make_event(1, event_type="purchase", timestamp=instant(0))])
    assert first.verdict is Verdict.DELIVERED
    profile_id = chain.profile("ep-1")["ProfileId"]
    [verdict] = chain.verdicts("e-1")
    assert verdict == {
        "EventTriggerName": "pixel-relay-purchase",
        "WouldStart": True,
        "Reason": "",
        "ProfileId": profile_id,
        "Campaign": CAMPAIGN,
        "CampaignReached": True,
        "CampaignReason": "",
    }
    [reached] = chain.campaigns.outbound_requests
    assert (reached.campaign_name, reached.profile_id) == ("Thank you", profile_id)

    # A second purchase a minute later (a reload of the confirmation page): one a day.
    chain.now += timedelta(minutes=1)
    sender.deliver([make_event(2, event_type="purchase", timestamp=instant(60))])
    [held] = chain.verdicts("e-2")
    assert (held["WouldStart"], held["Reason"]) == (
        False,
        "limit reached for this profile (1 per 1 DAYS)",
    )
    assert len(chain.campaigns.outbound_requests) == 1


def test_a_late_event_starts_no_campaign(chain: Chain) -> None:
    """A retry or a replay from the dead-letter queue arrives hours later: its object says
    so (`on_time` false) and the trigger's condition requires it on time."""
    chain.now = HAPPENED + timedelta(hours=2)
    [outcome] = chain.destination().deliver([make_event(1, event_type="purchase")])
    assert outcome.verdict is Verdict.DELIVERED  # recorded on the profile all the same
    assert chain.verdicts("e-1") == []
    assert chain.campaigns.outbound_requests == []
    [stored] = chain.profiles.stored_objects(DOMAIN, "PixelRelayEvent")
    assert stored["on_time"] == "false"


def test_a_trigger_without_a_campaign_fires_and_starts_nothing(chain: Chain) -> None:
    chain.destination().deliver([make_event(1, event_type="signup")])
    [verdict] = chain.verdicts("e-1")
    assert verdict["WouldStart"] is True
    assert (verdict["Campaign"], verdict["CampaignReason"]) == (
        None,
        "no campaign is linked (PutIntegration)",
    )
    assert chain.campaigns.outbound_requests == []


def test_a_visitor_with_1500_events_still_gets_the_newest_values_and_its_triggers(
    chain: Chain,
) -> None:
    """One object per event would reach the profile's object limit (AWS: 1,000 by default,
    and silence on what follows; the stand-in refuses new objects). Each event takes one of
    PROFILES_EVENTS_KEPT slots of its profile instead, so the profile stays writable."""
    sender = chain.destination()
    total = 1500
    for start in range(0, total, 100):
        events = [
            make_event(
                n,
                event_type="purchase" if n == total - 1 else "view",
                timestamp=instant(n),
                received_at=instant(n),
                user_attributes={"plan": (f"plan-{n}",)},
            )
            for n in range(start, start + 100)
        ]
        chain.now = HAPPENED + timedelta(seconds=start + 100)
        outcomes = sender.deliver(events)
        assert all(o.verdict is Verdict.DELIVERED for o in outcomes), {o.reason for o in outcomes}
    profile = chain.profile("ep-1")
    assert profile["Attributes"]["plan"] == f"plan-{total - 1}"
    stored = chain.profiles.stored_objects(DOMAIN, "PixelRelayEvent")
    assert len(stored) <= chain.settings.events_kept < chain.settings.max_objects
    # The newest event is kept, and its trigger started the campaign.
    assert f"e-{total - 1}" in {o["event_id"] for o in stored}
    [verdict] = chain.verdicts(f"e-{total - 1}")
    assert verdict["CampaignReached"] is True
    assert len(chain.profiles.accepted_objects) == total


def test_the_object_limit_refuses_what_one_object_per_event_would_send(chain: Chain) -> None:
    """The rule the slots avoid: a profile at its object type's MaxProfileObjectCount (a few
    early: "off by a few units") refuses new objects, and only new ones."""
    writer = client("customer-profiles", chain.profiles.url)
    small = object_type_definition(chain.settings)
    small["MaxProfileObjectCount"] = 20
    writer.put_profile_object_type(**small)
    # One object per event, as before the slots: 1,000 slots are as good as none here.
    one_each = CustomerProfilesDestination(
        writer, DOMAIN, "PixelRelayEvent", rules=ObjectRules(events_kept=1000)
    )
    outcomes = one_each.deliver([make_event(n, timestamp=instant(n)) for n in range(20)])
    refused = [n for n, o in enumerate(outcomes) if o.verdict is Verdict.REJECTED]
    assert len(refused) >= 5
    # The reason names the status only (AWS's message may quote an id); the service's own
    # words for the same refusal say why.
    assert {outcomes[n].reason for n in refused} == {"BatchPutProfileObject item failed: 400"}
    refused_object = profile_object(make_event(refused[0]), ObjectRules(events_kept=1000))
    with pytest.raises(ClientError, match="reached its object limit"):
        writer.put_profile_object(
            DomainName=DOMAIN, ObjectTypeName="PixelRelayEvent", Object=json.dumps(refused_object)
        )
    # A resent event replaces its object: still taken at the limit.
    [again] = one_each.deliver([make_event(0, timestamp=instant(0))])
    assert again.verdict is Verdict.DELIVERED
    # The same profile with its events in 10 slots is never refused.
    slotted = CustomerProfilesDestination(
        writer, DOMAIN, "PixelRelayEvent", rules=ObjectRules(events_kept=10)
    )
    later = [make_event(n, endpoint="ep-2", timestamp=instant(n)) for n in range(100)]
    assert all(o.verdict is Verdict.DELIVERED for o in slotted.deliver(later))


def test_signed_attributes_reach_the_profile(chain: Chain) -> None:
    chain.destination().deliver(
        [make_event(1, user_id="u-1", user_attributes={"loyalty": ("gold",), "plan": ("a",)})]
    )
    user = chain.profiles.profile(DOMAIN, "pixelRelayUserId", "u-1")
    assert user is not None
    assert user["Attributes"]["loyalty"] == "gold"
    assert user["Attributes"]["plan"] == "a"


def test_an_object_whose_keys_find_two_profiles_is_refused(chain: Chain) -> None:
    """AWS does not say which profile wins when an object's keys find two: the stand-in
    refuses it. pixel-relay's objects carry one PROFILE key value each, so never meet it."""
    writer = client("customer-profiles", chain.profiles.url)
    definition = {
        "DomainName": DOMAIN,
        "ObjectTypeName": "TwoKeys",
        "Description": "two profile keys",
        "AllowProfileCreation": True,
        "Fields": {
            "a": {"Source": "_source.a", "ContentType": "STRING"},
            "b": {"Source": "_source.b", "ContentType": "STRING"},
            "id": {"Source": "_source.id", "ContentType": "STRING"},
        },
        "Keys": {
            "keyA": [{"StandardIdentifiers": ["PROFILE"], "FieldNames": ["a"]}],
            "keyB": [{"StandardIdentifiers": ["PROFILE"], "FieldNames": ["b"]}],
            "keyId": [{"StandardIdentifiers": ["UNIQUE"], "FieldNames": ["id"]}],
        },
    }
    writer.put_profile_object_type(**definition)
    for body in ({"a": "1", "id": "x"}, {"b": "2", "id": "y"}):
        writer.put_profile_object(
            DomainName=DOMAIN, ObjectTypeName="TwoKeys", Object=json.dumps(body)
        )
    with pytest.raises(ClientError, match="find 2 profiles"):
        writer.put_profile_object(
            DomainName=DOMAIN,
            ObjectTypeName="TwoKeys",
            Object=json.dumps({"a": "1", "b": "2", "id": "z"}),
        )


# The campaigns stand-in's own rules -------------------------------------------------------


def test_only_customer_profiles_may_start_a_campaign(chain: Chain) -> None:
    outsider = client("connectcampaignsv2", chain.campaigns.url)
    request = [{"clientToken": "t-1", "profileId": "a" * 32}]
    with pytest.raises(ClientError, match="AccessDenied"):
        outsider.put_profile_outbound_request_batch(id="thank-you", profileOutboundRequests=request)
    described = outsider.describe_campaign(id="thank-you")["campaign"]
    assert described["source"] == {"eventTrigger": {"customerProfilesDomainArn": DOMAIN_ARN}}
    assert described["tags"]["owner"].startswith("arn:aws:connect:us-east-1:123456789012:instance/")


def test_a_campaign_takes_at_most_20_requests_and_a_client_token_once(chain: Chain) -> None:
    url = chain.campaigns.url
    profile = "b" * 32
    assert campaigns_module.start_campaign(url, CAMPAIGN, profile, "same") == (True, "")
    assert campaigns_module.start_campaign(url, CAMPAIGN, profile, "same") == (True, "")
    assert len(chain.campaigns.outbound_requests) == 1  # "This API is idempotent"
    service = boto3.client(
        "connectcampaignsv2",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=campaigns_module.CUSTOMER_PROFILES_KEY,
        aws_secret_access_key="x",
    )
    many = [{"clientToken": f"t-{n}", "profileId": profile} for n in range(21)]
    with pytest.raises(ClientError, match="21 members"):
        service.put_profile_outbound_request_batch(id="thank-you", profileOutboundRequests=many)
    chain.campaigns.add_campaign(CAMPAIGN.replace("thank-you", "segment-one"), domain_arn=None)
    reached, why = campaigns_module.start_campaign(
        url, CAMPAIGN.replace("thank-you", "segment-one"), profile, "t"
    )
    assert (reached, why) == (
        False,
        "the campaign answered 409: Campaign segment-one's source is not an event trigger",
    )
