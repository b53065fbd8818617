"""Create or update the Customer Profiles object type a stage's events are recorded in.

`python -m devtools.deploy.profiles_setup --stage dev` reads the stage's settings from
.chalice/config.json (PROFILES_DOMAIN, PROFILES_OBJECT_TYPE, ALLOWED_USER_ATTRIBUTES), reads
the object type with GetProfileObjectType and calls PutProfileObjectType only when it is
missing or differs, so running it again changes nothing. Run it before deploying a stage
with the customer-profiles destination, and again after changing ALLOWED_USER_ATTRIBUTES:
the object type decides which attributes reach the profile.

The domain itself is not created here: it belongs to the Amazon Connect instance.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.config import ConfigError
from chalicelib.destinations.customer_profiles import Settings, object_type_definition
from devtools.paths import ROOT
from devtools.process import aws_region
from devtools.queue_spec import stage_environment

# What pixel-relay decides in a definition; the service adds CreatedAt, Tags and the like.
COMPARED = ("Description", "AllowProfileCreation", "Fields", "Keys")


class ObjectTypeClient(Protocol):
    """The part of boto3's "customer-profiles" client that setup uses."""

    def get_domain(self, *, DomainName: str) -> Mapping[str, Any]: ...  # noqa: N803

    def get_profile_object_type(
        self,
        *,
        DomainName: str,  # noqa: N803
        ObjectTypeName: str,  # noqa: N803
    ) -> Mapping[str, Any]: ...

    def put_profile_object_type(self, **request: Any) -> Mapping[str, Any]: ...


class SetupError(Exception):
    """A failure the operator must fix; the message says what."""


@dataclass(frozen=True)
class SetupResult:
    action: str  # "created", "updated" or "unchanged"
    changed: tuple[str, ...] = ()


def comparable(definition: Mapping[str, Any]) -> dict[str, Any]:
    """The compared members, normalized: the order of StandardIdentifiers and absent
    defaults (no Target, AllowProfileCreation false) carry no meaning."""
    keys = {
        name: [
            {
                "StandardIdentifiers": sorted(key.get("StandardIdentifiers", [])),
                "FieldNames": list(key.get("FieldNames", [])),
            }
            for key in key_list
        ]
        for name, key_list in definition.get("Keys", {}).items()
    }
    return {
        "Description": definition.get("Description", ""),
        "AllowProfileCreation": bool(definition.get("AllowProfileCreation", False)),
        "Fields": {name: dict(spec) for name, spec in definition.get("Fields", {}).items()},
        "Keys": keys,
    }


def differences(current: Mapping[str, Any], desired: Mapping[str, Any]) -> tuple[str, ...]:
    now, wanted = comparable(current), comparable(desired)
    return tuple(name for name in COMPARED if now[name] != wanted[name])


def ensure_object_type(
    client: ObjectTypeClient, settings: Settings, dry_run: bool = False
) -> SetupResult:
    """Make the domain's object type match `object_type_definition(settings)`."""
    desired = object_type_definition(settings)
    try:
        client.get_domain(DomainName=settings.domain)
    except ClientError as error:
        if _code(error) == "ResourceNotFoundException":
            raise SetupError(
                f"domain {settings.domain!r} does not exist in this account and region; "
                "create it in the Amazon Connect console (Customer profiles) or set "
                "PROFILES_DOMAIN to an existing one"
            ) from None
        raise SetupError(f"GetDomain failed: {_describe(error)}") from None
    try:
        current = client.get_profile_object_type(
            DomainName=settings.domain, ObjectTypeName=settings.object_type
        )
    except ClientError as error:
        if _code(error) != "ResourceNotFoundException":
            raise SetupError(f"GetProfileObjectType failed: {_describe(error)}") from None
        result = SetupResult("created", COMPARED)
    else:
        changed = differences(current, desired)
        if not changed:
            return SetupResult("unchanged")
        result = SetupResult("updated", changed)
    if not dry_run:
        try:
            client.put_profile_object_type(**desired)
        except ClientError as error:
            raise SetupError(f"PutProfileObjectType failed: {_describe(error)}") from None
    return result


def _code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: ClientError) -> str:
    status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
    message = error.response.get("Error", {}).get("Message", "")
    return f"{status} {_code(error)} {message}".strip()


def report(result: SetupResult, settings: Settings, dry_run: bool) -> str:
    name = f"object type {settings.object_type!r} in domain {settings.domain!r}"
    if result.action == "unchanged":
        return f"{name} is up to date; nothing to do"
    verb = {"created": "create", "updated": "update"}[result.action]
    what = f"would {verb}" if dry_run else result.action
    if result.action == "updated":
        return f"{what} {name} ({', '.join(result.changed)} changed)"
    return f"{what} {name}"


def main(argv: Sequence[str] | None = None, root: Path = ROOT) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m devtools.deploy.profiles_setup", description=__doc__
    )
    parser.add_argument("--stage", required=True, help="a stage in .chalice/config.json")
    parser.add_argument(
        "--dry-run", action="store_true", help="say what would change; change nothing"
    )
    parser.add_argument("--show", action="store_true", help="print the definition as JSON")
    args = parser.parse_args(argv)
    try:
        settings = Settings.from_env(stage_environment(args.stage, root))
    except ConfigError as error:
        print(f"stage {args.stage}: {error}", file=sys.stderr)
        return 2
    if args.show:
        print(json.dumps(object_type_definition(settings), indent=2, sort_keys=True))
    try:
        aws_region()  # AWS_REGION works too, and a profile's region (devtools.process)
        client: ObjectTypeClient = boto3.client(
            "customer-profiles", config=Config(retries={"mode": "standard"})
        )
        result = ensure_object_type(client, settings, dry_run=args.dry_run)
    except SetupError as error:
        print(f"stage {args.stage}: {error}", file=sys.stderr)
        return 1
    except BotoCoreError as error:  # no region, no credentials, service unreachable
        print(f"stage {args.stage}: cannot reach Customer Profiles: {error}", file=sys.stderr)
        return 1
    print(report(result, settings, args.dry_run))
    return 0


if __name__ == "__main__":
    sys.exit(main())
