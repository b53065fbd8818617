"""Customer Profiles' dry run: `devtools.standins.customer_profiles`, set up as `make
profiles-setup` would (the object type, the event triggers with their limits, one integration
per PROFILES_CAMPAIGNS pair), with the campaigns stand-in (`devtools.standins.campaigns`)
behind it holding each campaign the stage names, its source this domain's event triggers.

It hands over every object it accepts: `received` is `{"ObjectTypeName", "Object",
"EventTriggers"}`, the last being the triggers the object fired (`TriggerVerdict.to_json()`:
did the trigger fire, and if not why; which campaign it started and which profile that
campaign would reach). The demo page shows "campaign X would reach profile Y".

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from chalicelib.destinations.customer_profiles import CustomerProfiles
from devtools.localstack.doubles import Running, Setup, StandInPort

if TYPE_CHECKING:
    from devtools.standins.campaigns import CampaignsStandIn
    from devtools.standins.customer_profiles import AcceptedObject, ProfilesStandIn

PORT: Final = StandInPort("profiles", 9200)


@dataclass(frozen=True)
class _Pair:
    """Both stand-ins, stopped together. Everything else is the Customer Profiles
    stand-in's (an outage, planned faults, its records), as before the campaigns joined."""

    profiles: ProfilesStandIn
    campaigns: CampaignsStandIn

    def stop(self) -> None:
        self.profiles.stop()
        self.campaigns.stop()

    def fail_next_requests(self, status: int, count: int = 1) -> None:
        self.profiles.fail_next_requests(status, count)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.profiles, name)


def start(setup: Setup) -> Running:
    # Imported here: the local stack reads PORT at start whether or not this destination runs.
    from devtools.deploy.profiles_setup import (
        ensure_event_triggers,
        ensure_integrations,
        ensure_object_type,
    )
    from devtools.standins.campaigns import CampaignsStandIn
    from devtools.standins.customer_profiles import ProfilesStandIn

    settings = CustomerProfiles.parse(setup.environment)

    def accepted(item: AcceptedObject) -> None:
        received = {
            "ObjectTypeName": item.object_type,
            "Object": item.object,
            "EventTriggers": [verdict.to_json() for verdict in item.fired_triggers],
        }
        setup.receive_record(item.object, received)

    campaigns = CampaignsStandIn(setup.host).start()
    try:
        profiles = ProfilesStandIn(
            [settings.domain],
            setup.host,
            setup.port,
            on_accept=accepted,
            campaigns_url=campaigns.url,
        ).start()
    except BaseException:
        campaigns.stop()
        raise
    pair = _Pair(profiles, campaigns)
    try:
        for campaign in settings.campaigns:
            partition, _, _, region, account = campaign.arn.split(":")[:5]
            domain_arn = f"arn:{partition}:profile:{region}:{account}:domains/{settings.domain}"
            campaigns.add_campaign(campaign.arn, f"{campaign.event_type} (stand-in)", domain_arn)
        client = setup.client("customer-profiles", profiles.url)
        ensure_object_type(client, settings)
        ensure_event_triggers(client, settings)
        ensure_integrations(client, settings)
    except BaseException:
        pair.stop()
        raise
    return Running({"AWS_ENDPOINT_URL_CUSTOMER_PROFILES": profiles.url}, standin=pair)
