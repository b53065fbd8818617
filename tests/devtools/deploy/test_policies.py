"""The IAM policy files match the stage settings, and grant only what each function needs."""

from __future__ import annotations

import json

from devtools.deploy.policies import policy_files, render
from devtools.paths import ROOT
from devtools.queue_spec import chalice_config, stage_environment


def test_policy_files_are_current_run_make_policies_if_not() -> None:
    files = policy_files()
    assert files, "no stage has its destinations' settings: nothing to check"
    for path, policy in files.items():
        assert path.read_text() == render(policy), f"{path.name} is stale: run make policies"


def test_every_stage_turns_off_chalices_policy_generation() -> None:
    for stage in chalice_config()["stages"].values():
        assert stage["autogen_policy"] is False


def test_the_pixel_may_only_send_to_its_queue() -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-dev-api_handler.json").read_text())
    grants = [s for s in policy["Statement"] if not s["Action"][0].startswith("logs:")]
    assert grants == [
        {
            "Sid": "EnqueueHits",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
            "Resource": "arn:*:sqs:*:*:pixel-relay-dev-events",
        }
    ]


def test_the_consumer_may_write_objects_in_one_domain_only() -> None:
    """The dev stage as shipped: Customer Profiles, the default destination."""
    policy = json.loads((ROOT / ".chalice" / "policy-dev-deliver.json").read_text())
    assert not [s for s in policy["Statement"] if s.get("Sid") == "RecordEvents"]
    [profiles] = [s for s in policy["Statement"] if s.get("Sid") == "PutProfileObjects"]
    assert profiles["Action"] == ["profile:PutProfileObject"]  # BatchPutProfileObject's too
    assert profiles["Resource"] == [
        "arn:*:profile:*:*:domains/pixel-relay-dev",
        "arn:*:profile:*:*:domains/pixel-relay-dev/object-types/PixelRelayEvent",
    ]


def test_the_consumer_may_put_events_in_one_project_only() -> None:
    from devtools.deploy.policies import consumer_policy

    environment = {**stage_environment("dev"), "DESTINATIONS": "pinpoint"}
    policy = consumer_policy(environment)
    [pinpoint] = [s for s in policy["Statement"] if s.get("Sid") == "RecordEvents"]
    assert pinpoint["Action"] == ["mobiletargeting:PutEvents"]
    assert all("apps/dev-application" in arn for arn in pinpoint["Resource"])
    assert not any(arn.endswith("apps/*") for arn in pinpoint["Resource"])


def test_each_destination_adds_one_statement_on_its_own_resource() -> None:
    from devtools.deploy.policies import consumer_policy

    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "DESTINATIONS": "firehose,eventbridge,customer-profiles",
        "FIREHOSE_STREAM": "events-stream",
        "EVENTBRIDGE_BUS": "shop",
        "PROFILES_DOMAIN": "shop-domain",
    }
    statements = {s.get("Sid"): s for s in consumer_policy(environment)["Statement"]}
    assert "RecordEvents" not in statements  # no Pinpoint configured: no Pinpoint grant
    assert statements["WriteFirehose"]["Resource"].endswith(":deliverystream/events-stream")
    assert statements["PutBusEvents"]["Resource"].endswith(":event-bus/shop")
    assert statements["PutProfileObjects"]["Resource"] == [
        "arn:*:profile:*:*:domains/shop-domain",
        "arn:*:profile:*:*:domains/shop-domain/object-types/PixelRelayEvent",
    ]


def test_signed_hits_let_the_pixel_read_its_one_key_parameter() -> None:
    from devtools.deploy.policies import pixel_policy

    environment = {"EVENTS_QUEUE": "q", "TOKEN_HS256_KEYS_PARAMETER": "/pixel-relay/keys"}
    [keys] = [
        s for s in pixel_policy(environment)["Statement"] if s.get("Sid") == "ReadSigningKeys"
    ]
    assert keys["Action"] == ["ssm:GetParameter"]
    assert keys["Resource"] == "arn:*:ssm:*:*:parameter/pixel-relay/keys"
    environment["TOKEN_HS256_KEYS_PARAMETER"] = "secretsmanager:pixel-relay/keys"
    [keys] = [
        s for s in pixel_policy(environment)["Statement"] if s.get("Sid") == "ReadSigningKeys"
    ]
    assert keys["Action"] == ["secretsmanager:GetSecretValue"]


def test_an_eventbridge_bus_given_by_arn_is_granted_by_that_arn() -> None:
    from devtools.deploy.policies import consumer_policy

    arn = "arn:aws:events:eu-west-1:123456789012:event-bus/central"
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "DESTINATIONS": "eventbridge",
        "EVENTBRIDGE_BUS": arn,
    }
    statements = {s.get("Sid"): s for s in consumer_policy(environment)["Statement"]}
    assert statements["PutBusEvents"]["Resource"] == arn
