"""Pinpoint's dry run: `devtools.standins.pinpoint`, validating each PutEvents request with
botocore's model, hands over every event it accepts.

Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

from devtools.localstack.doubles import Running, Setup, StandInPort
from devtools.standins.pinpoint import AcceptedEvent, PinpointStandIn

if TYPE_CHECKING:
    from chalicelib.destinations.pinpoint import Settings

PORT: Final = StandInPort("pinpoint", 9100)


def start(setup: Setup) -> Running:
    settings: Settings = setup.settings

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
