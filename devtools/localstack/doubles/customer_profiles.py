"""Customer Profiles' dry run: `devtools.standins.customer_profiles`, with the object type
created as `make profiles-setup` would, hands over every object it accepts.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from devtools.localstack.doubles import Running, Setup, StandInPort

if TYPE_CHECKING:
    from chalicelib.destinations.customer_profiles import Settings
    from devtools.standins.customer_profiles import AcceptedObject

PORT: Final = StandInPort("profiles", 9200)


def start(setup: Setup) -> Running:
    # Imported here: the local stack reads PORT at start whether or not this destination runs.
    from devtools.deploy.profiles_setup import ensure_object_type
    from devtools.standins.customer_profiles import ProfilesStandIn

    settings: Settings = setup.settings

    def accepted(item: AcceptedObject) -> None:
        setup.receive_record(item.object, item.object)

    standin = ProfilesStandIn([settings.domain], setup.host, setup.port, on_accept=accepted).start()
    try:
        ensure_object_type(setup.client("customer-profiles", standin.url), settings)
    except BaseException:
        standin.stop()
        raise
    return Running({"AWS_ENDPOINT_URL_CUSTOMER_PROFILES": standin.url}, standin=standin)
