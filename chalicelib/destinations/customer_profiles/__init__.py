"""Amazon Connect Customer Profiles: each event recorded as one profile object.

Events go in `BatchPutProfileObject` calls of up to 10 objects (`delivery`), in an object
type that `make profiles-setup` and the CloudFormation path define from
`object_type.object_type_definition`. Each object carries one profile key value (the
trusted user id of a signed-in hit, else the endpoint id), so it can never name two
profiles; each profile attribute of a batch travels with its profile's newest event only,
so the profile ends with the newest value whatever order the service applies a batch in.
One accepted object records the event and its profile update together. Its unique key is
the profile's key value and one of PROFILES_EVENTS_KEPT slots chosen by the event id: a
resend overwrites its first copy, and a busy profile stays under its object limit.
docs/destinations/customer-profiles.md has the keys, the fields, the object and the rates.

- `settings`: PROFILES_* and what they allow;
- `object_type`: the stored object and its object type;
- `planning`: which objects share a call, which calls go in order;
- `delivery`: the calls and their answers;
- `erasure`: forgetting a visitor (their profile and its objects), for the operator.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Final

from chalicelib.destinations.base import (
    DestinationPlugin,
    Statement,
    call_budget_ms,
    own_arn,
    service_client,
)
from chalicelib.destinations.customer_profiles.delivery import (
    CustomerProfilesDestination,
    ProfilesClient,
)
from chalicelib.destinations.customer_profiles.object_type import ObjectRules
from chalicelib.destinations.customer_profiles.settings import NAME, VARIABLES, Settings

if TYPE_CHECKING:
    from concurrent.futures import Executor


class CustomerProfiles(DestinationPlugin[Settings]):
    name = NAME
    service = "customer-profiles"
    variables = VARIABLES
    double = "devtools.localstack.doubles.customer_profiles"
    probe = "devtools.ops.probes.customer_profiles:probe"
    resources = "devtools.deploy.profiles_template:resources"
    # BatchPutProfileObject takes 10 objects a call.
    calls_per_1000_events = 100
    call_metric = "BatchPutProfileObjectCalls"

    @classmethod
    def parse(cls, environ: Mapping[str, str]) -> Settings:
        return Settings.from_env(environ)

    def create(self, pool: Executor | None = None) -> CustomerProfilesDestination:
        settings = self.settings
        client: ProfilesClient = service_client(self.service, settings.timeout_seconds)
        return CustomerProfilesDestination(
            client,
            settings.domain,
            settings.object_type,
            call_budget_ms(settings.timeout_seconds),
            settings.write_threads,
            pool,
            ObjectRules.of(settings),
        )

    def iam_statements(self) -> list[Statement]:
        """Object writes for the one object type. The Service Authorization Reference
        ("Actions, resources, and condition keys for Amazon Connect Customer Profiles")
        lists no BatchPutProfileObject action: profile:PutProfileObject authorizes it, on
        the `object-types` resource type alone (docs/destinations/customer-profiles.md, IAM)."""
        domain, object_type = self.settings.domain, self.settings.object_type
        return [
            {
                "Sid": "PutProfileObjects",
                "Effect": "Allow",
                "Action": ["profile:PutProfileObject"],
                "Resource": [own_arn("profile", f"domains/{domain}/object-types/{object_type}")],
            }
        ]

    def erasure_statements(self) -> list[Statement]:
        """`forget` finds the visitor's profiles, lists and deletes pixel-relay's objects on
        them and deletes the profiles, in the one domain."""
        domain, object_type = self.settings.domain, self.settings.object_type
        return [
            {
                "Sid": "ForgetProfiles",
                "Effect": "Allow",
                "Action": [
                    "profile:SearchProfiles",
                    "profile:ListProfileObjects",
                    "profile:DeleteProfileObject",
                    "profile:DeleteProfile",
                ],
                "Resource": [
                    own_arn("profile", f"domains/{domain}"),
                    own_arn("profile", f"domains/{domain}/object-types/{object_type}"),
                ],
            }
        ]


PLUGIN: Final = CustomerProfiles
