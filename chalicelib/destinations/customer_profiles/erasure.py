"""Forgetting a visitor in Customer Profiles: their profile, found by the object type's keys,
with every pixel-relay object on it, deleted.

Run by the operator (`make ops ARGS="forget ..."`), never by the consumer. In AWS's words
(API reference): `SearchProfiles` finds profiles by a search key, and a key of an object
type "is a special element that can be used to search for a customer profile";
`ListProfileObjects` "returns a list of objects associated with a profile of a given
ProfileObjectType"; `DeleteProfileObject` "removes an object associated with a profile";
`DeleteProfile` "deletes the standard customer profile and all data pertaining to the
profile". AWS does not say in so many words that the profile's objects go with it, so the
objects of pixel-relay's type are deleted one by one first, each delete answered, and the
profile after them (with whatever other sources put on it: it is the visitor's).

An object carries one profile key value: the trusted user id of a signed-in hit
(`pixelRelayUserId`), else the endpoint id (`pixelRelayEndpointId`). A user id finds the
profile of the person's signed-in events, an endpoint id the anonymous profile of a device;
each found profile is deleted. A rerun finds nothing and says so.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Final, Protocol

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.destinations.base import Visitor, verdict_for_status
from chalicelib.destinations.customer_profiles.object_type import PROFILE_KEY, USER_PROFILE_KEY
from chalicelib.outcomes import Outcome, Verdict

PAGE_SIZE: Final = 100  # the most SearchProfiles and ListProfileObjects answer a page


class ErasureClient(Protocol):
    """The part of boto3's "customer-profiles" client forgetting uses."""

    def search_profiles(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def list_profile_objects(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def delete_profile_object(self, **kwargs: Any) -> Mapping[str, Any]: ...

    def delete_profile(self, **kwargs: Any) -> Mapping[str, Any]: ...


class ProfileEraser:
    """Deletes a visitor's profiles, and pixel-relay's objects on them, in one domain."""

    def __init__(self, client: ErasureClient, domain: str, object_type: str) -> None:
        self._client = client
        self._domain = domain
        self._object_type = object_type

    def forget(self, visitor: Visitor) -> Outcome:
        """What was deleted (DELIVERED, "nothing left" when nothing was found), or the
        failure: a 4xx other than 429 is REJECTED (a permission, a missing domain), the rest
        RETRY; either way the operator runs the command again once it is fixed."""
        keys = [
            (key, value)
            for key, value in (
                (PROFILE_KEY, visitor.endpoint_id),
                (USER_PROFILE_KEY, visitor.user_id),
            )
            if value
        ]
        try:
            profiles = list(
                dict.fromkeys(p for key, value in keys for p in self._search(key, value))
            )
            objects = deleted = 0
            for profile in profiles:
                for unique_key in self._objects(profile):
                    objects += self._delete_object(profile, unique_key)
                deleted += self._delete_profile(profile)
        except ClientError as error:
            status = int(error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
            code = error.response.get("Error", {}).get("Code", "")
            reason = f"{error.operation_name} failed: {status} {code}".strip()
            return Outcome(verdict_for_status(status), reason)
        except BotoCoreError as error:
            return Outcome(Verdict.RETRY, f"Customer Profiles failed: {type(error).__name__}")
        if not profiles:
            found_by = " or ".join(key for key, _ in keys)
            return Outcome(Verdict.DELIVERED, f"nothing left: no profile found by {found_by}")
        return Outcome(Verdict.DELIVERED, f"{objects} object(s) and {deleted} profile(s) deleted")

    def _search(self, key: str, value: str) -> Iterator[str]:
        """The ids of the profiles `key` = `value` finds, every page."""
        token: str | None = None
        while True:
            page = self._client.search_profiles(
                DomainName=self._domain,
                KeyName=key,
                Values=[value],
                MaxResults=PAGE_SIZE,
                **({"NextToken": token} if token else {}),
            )
            for profile in page.get("Items", []):
                yield str(profile["ProfileId"])
            token = page.get("NextToken")
            if not token:
                return

    def _objects(self, profile: str) -> list[str]:
        """The unique keys of every object of pixel-relay's type on the profile, listed in
        full before any is deleted, so that no page is skipped."""
        found: list[str] = []
        token: str | None = None
        while True:
            page = self._client.list_profile_objects(
                DomainName=self._domain,
                ObjectTypeName=self._object_type,
                ProfileId=profile,
                MaxResults=PAGE_SIZE,
                **({"NextToken": token} if token else {}),
            )
            found += [str(item["ProfileObjectUniqueKey"]) for item in page.get("Items", [])]
            token = page.get("NextToken")
            if not token:
                return found

    def _delete_object(self, profile: str, unique_key: str) -> int:
        """1 when deleted, 0 when it was gone already (404)."""
        try:
            self._client.delete_profile_object(
                DomainName=self._domain,
                ObjectTypeName=self._object_type,
                ProfileId=profile,
                ProfileObjectUniqueKey=unique_key,
            )
        except ClientError as error:
            if _not_found(error):
                return 0
            raise
        return 1

    def _delete_profile(self, profile: str) -> int:
        try:
            self._client.delete_profile(DomainName=self._domain, ProfileId=profile)
        except ClientError as error:
            if _not_found(error):
                return 0
            raise
        return 1


def _not_found(error: ClientError) -> bool:
    return error.response.get("ResponseMetadata", {}).get("HTTPStatusCode") == 404
