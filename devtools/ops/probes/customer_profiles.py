"""The customer-profiles destination's `ops check` probe: the test event's object on the
profile of its endpoint id.

The object type's PROFILE key on the endpoint id finds the profile (`SearchProfiles`: "A Key
is a special element that can be used to search for a customer profile", ObjectTypeKey in
the Customer Profiles API reference); the profile's objects of the type are listed
(`ListProfileObjects`, page by page) and the one whose `event_id` is the test's is the
proof. The test profile, with its object, is deleted afterwards (`DeleteProfile`). The
operator needs `profile:SearchProfiles`, `profile:ListProfileObjects` and
`profile:DeleteProfile` on the domain.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Mapping
from typing import Any

from botocore.exceptions import ClientError

from devtools.ops.probes.base import ClientFactory, TestEvent


class ProfilesProbe:
    def __init__(self, profiles: Any, domain: str, object_type: str, profile_key: str) -> None:
        self._profiles = profiles
        self._domain = domain
        self._object_type = object_type
        self._profile_key = profile_key

    def _profile_ids(self, test: TestEvent) -> list[str]:
        found = self._profiles.search_profiles(
            DomainName=self._domain, KeyName=self._profile_key, Values=[test.endpoint_id]
        )
        return [str(item["ProfileId"]) for item in found.get("Items", [])]

    def _objects(self, profile_id: str) -> Iterator[dict[str, Any]]:
        token: dict[str, str] = {}
        while True:
            page = self._profiles.list_profile_objects(
                DomainName=self._domain,
                ObjectTypeName=self._object_type,
                ProfileId=profile_id,
                MaxResults=100,
                **token,
            )
            yield from page.get("Items", [])
            if not page.get("NextToken"):
                return
            token = {"NextToken": page["NextToken"]}

    def delivered(self, test: TestEvent) -> str | None:
        for profile_id in self._profile_ids(test):
            for item in self._objects(profile_id):
                try:
                    event_id = json.loads(item.get("Object", "{}")).get("event_id")
                except ValueError:
                    continue
                if event_id == test.event_id:
                    return (
                        f"object {item.get('ProfileObjectUniqueKey')} on profile {profile_id}"
                        f" in domain {self._domain}"
                    )
        return None

    def cleanup(self, test: TestEvent) -> None:
        with contextlib.suppress(ClientError):
            for profile_id in self._profile_ids(test):
                self._profiles.delete_profile(DomainName=self._domain, ProfileId=profile_id)


def probe(environment: Mapping[str, str], client: ClientFactory) -> ProfilesProbe:
    """The plug-in's `probe` hook: its domain and object type, asked with `client`'s."""
    from chalicelib.destinations.customer_profiles import CustomerProfiles
    from chalicelib.destinations.customer_profiles.object_type import PROFILE_KEY

    settings = CustomerProfiles.parse(environment)
    return ProfilesProbe(
        client("customer-profiles"), settings.domain, settings.object_type, PROFILE_KEY
    )
