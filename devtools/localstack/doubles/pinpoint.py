"""Pinpoint's dry run: `devtools.standins.pinpoint`, validating each PutEvents request with
botocore's model, hands over every event it accepts.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from chalicelib.destinations.pinpoint import Pinpoint
from devtools.localstack.doubles import Running, Setup, StandInPort

if TYPE_CHECKING:
    from devtools.standins.pinpoint import AcceptedEvent

PORT: Final = StandInPort("pinpoint", 9100)


def start(setup: Setup) -> Running:
    # Imported here: the local stack reads PORT at start whether or not this destination runs.
    from devtools.standins.pinpoint import PinpointStandIn

    settings = Pinpoint.parse(setup.environment)

    def accepted(event: AcceptedEvent) -> None:
        setup.receive(event.endpoint_id, event.event_id, event.event, event.endpoint)

    standin = PinpointStandIn(
        [settings.application_id],
        setup.host,
        setup.port,
        on_accept=accepted,
        validate_model=True,
    ).start()
    return Running({"AWS_ENDPOINT_URL_PINPOINT": standin.url}, standin=standin)
