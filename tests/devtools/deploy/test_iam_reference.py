"""Customer Profiles' IAM, held to the Service Authorization Reference: every action granted
exists there, on a resource type the reference lists for it, and no more is granted than the
calls made. The reference is read from cfn-lint's copy (its policy data, refreshed from the
reference with each release), so the check runs offline."""

from __future__ import annotations

import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import cfnlint  # type: ignore[import-untyped]

from chalicelib.destinations.customer_profiles import CustomerProfiles
from chalicelib.destinations.customer_profiles.settings import Settings
from devtools.deploy.profiles_setup import setup_statements

CAMPAIGN = "arn:aws:connect-campaigns:us-east-1:123456789012:campaign/c-1"
ENV = {
    "PROFILES_DOMAIN": "shop",
    "PROFILES_TRIGGER_EVENTS": "purchase",
    "PROFILES_CAMPAIGNS": f"purchase={CAMPAIGN}",
}
# The resource type each ARN path names (`domains/D/<type>/...`); the domain itself: domains.
_TYPE: dict[str, str] = {
    "object-types": "object-types",
    "event-triggers": "event-triggers",
    "integrations": "integrations",
}


@cache
def reference() -> dict[str, Any]:
    path = Path(cfnlint.__file__).parent / "data" / "AdditionalSpecs" / "Policies.json"
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def resource_type(arn: str) -> str:
    service = arn.split(":")[2]
    path = arn.split(":", 5)[5]
    if service == "connect-campaigns":
        return path.split("/")[0]
    parts = path.split("/")
    return _TYPE[parts[2]] if len(parts) > 2 else parts[0]


def assert_in_reference(statements: list[Any]) -> None:
    for statement in statements:
        resources = statement["Resource"]
        for action in statement["Action"]:
            prefix, name = action.split(":")
            service = reference()[prefix]
            listed = service["Actions"].get(name.lower())
            assert listed is not None, f"{action} is not in the Service Authorization Reference"
            for arn in resources if isinstance(resources, list) else [resources]:
                concrete = re.sub(r"\$\{AWS::[A-Za-z]+\}", "x", arn)
                kind = resource_type(concrete)
                assert kind in listed["Resources"], f"{action} on {kind}: {listed['Resources']}"
                formats = service["Resources"][kind]["ARNFormats"]
                patterns = [
                    re.sub(r"\\\$\\\{[A-Za-z]+\\\}", "[^:]*", re.escape(f)) for f in formats
                ]
                assert any(re.fullmatch(p.replace(r"\.\*", ".*"), concrete) for p in patterns)


def test_the_consumer_writes_objects_with_the_action_that_authorizes_them() -> None:
    statements = CustomerProfiles.configure(ENV).iam_statements()
    assert [s["Action"] for s in statements] == [["profile:PutProfileObject"]]
    # No BatchPutProfileObject action exists: PutProfileObject authorizes it, on object-types.
    assert "batchputprofileobject" not in reference()["profile"]["Actions"]
    assert reference()["profile"]["Actions"]["putprofileobject"]["Resources"] == ["object-types"]
    assert_in_reference(list(statements))


def test_the_setup_policy_names_each_call_on_its_resource_type() -> None:
    statements = setup_statements(Settings.from_env(ENV))
    assert_in_reference(list(statements))
    granted = {action for s in statements for action in s["Action"]}
    # Exactly what the setup calls (profiles_setup's clients), nothing else.
    assert granted == {
        "profile:GetDomain",
        "profile:GetProfileObjectType",
        "profile:PutProfileObjectType",
        "profile:ListEventTriggers",
        "profile:GetEventTrigger",
        "profile:CreateEventTrigger",
        "profile:UpdateEventTrigger",
        "profile:ListIntegrations",
        "profile:GetIntegration",
        "profile:PutIntegration",
        "connect-campaigns:DescribeCampaign",
    }
    # Without triggers or campaigns, no grant for them.
    bare = setup_statements(Settings.from_env({"PROFILES_DOMAIN": "shop"}))
    assert {a for s in bare for a in s["Action"]} == {
        "profile:GetDomain",
        "profile:ListEventTriggers",
        "profile:ListIntegrations",
        "profile:GetProfileObjectType",
        "profile:PutProfileObjectType",
    }


def test_the_command_prints_the_setup_policy(tmp_path: Path, capsys: Any) -> None:
    from devtools.deploy import profiles_setup

    config = {"version": "2.0", "app_name": "t", "stages": {"dev": {"environment_variables": ENV}}}
    (tmp_path / ".chalice").mkdir()
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    assert profiles_setup.main(["--stage", "dev", "--policy"], root=tmp_path) == 0
    policy = json.loads(capsys.readouterr().out)
    assert policy["Statement"] == setup_statements(Settings.from_env(ENV))
