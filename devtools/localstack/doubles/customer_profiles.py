"""Customer Profiles' dry run: `devtools.standins.customer_profiles`, with the object type
and the event triggers created as `make profiles-setup` would, hands over every object it
accepts: `received` is `{"ObjectTypeName", "Object", "EventTriggers"}`, the last being the
triggers the object fired (`TriggerVerdict.to_json()`: would the campaign start, and if not,
why).

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from chalicelib.destinations.customer_profiles import CustomerProfiles
from devtools.localstack.doubles import Running, Setup, StandInPort

if TYPE_CHECKING:
    from devtools.standins.customer_profiles import AcceptedObject

PORT: Final = StandInPort("profiles", 9200)


def start(setup: Setup) -> Running:
    # Imported here: the local stack reads PORT at start whether or not this destination runs.
    from devtools.deploy.profiles_setup import ensure_event_triggers, ensure_object_type
    from devtools.standins.customer_profiles import ProfilesStandIn

    settings = CustomerProfiles.parse(setup.environment)

    def accepted(item: AcceptedObject) -> None:
        received = {
            "ObjectTypeName": item.object_type,
            "Object": item.object,
            "EventTriggers": [verdict.to_json() for verdict in item.fired_triggers],
        }
        setup.receive_record(item.object, received)

    standin = ProfilesStandIn([settings.domain], setup.host, setup.port, on_accept=accepted).start()
    try:
        client = setup.client("customer-profiles", standin.url)
        ensure_object_type(client, settings)
        ensure_event_triggers(client, settings)
    except BaseException:
        standin.stop()
        raise
    return Running({"AWS_ENDPOINT_URL_CUSTOMER_PROFILES": standin.url}, standin=standin)
