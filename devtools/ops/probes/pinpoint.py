"""The pinpoint destination's `ops check` probe: `PutEvents` creates the endpoint it names,
so `GetEndpoint` finding the test endpoint proves the event arrived. The endpoint is
deleted afterwards; the event stays in the project's analytics."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from typing import Any

from botocore.exceptions import ClientError

from devtools.ops.probes.base import ClientFactory, TestEvent


class PinpointProbe:
    def __init__(self, pinpoint: Any, application_id: str) -> None:
        self._pinpoint = pinpoint
        self._application_id = application_id

    def delivered(self, test: TestEvent) -> str | None:
        try:
            self._pinpoint.get_endpoint(
                ApplicationId=self._application_id, EndpointId=test.endpoint_id
            )
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") in {"NotFoundException", "404"}:
                return None
            raise
        return f"endpoint {test.endpoint_id} in project {self._application_id}"

    def cleanup(self, test: TestEvent) -> None:
        with contextlib.suppress(ClientError):  # already gone, or never created
            self._pinpoint.delete_endpoint(
                ApplicationId=self._application_id, EndpointId=test.endpoint_id
            )


def probe(environment: Mapping[str, str], client: ClientFactory) -> PinpointProbe:
    """The plug-in's `probe` hook: its project, asked with a client from `client`."""
    from chalicelib.destinations.pinpoint import Pinpoint

    return PinpointProbe(client("pinpoint"), Pinpoint.parse(environment).application_id)
