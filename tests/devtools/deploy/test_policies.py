"""The IAM policy files match the stage settings, and grant only what each function needs:
every action is one chalicelib calls (read from its source), one Lambda's SQS poller needs,
a log action, or a KMS action of the queues' own key."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import boto3
import pytest

from chalicelib.destinations import registry
from chalicelib.destinations.base import own_arn
from devtools.deploy.policies import (
    FORGET_DEAD_LETTER_ACTIONS,
    FORGET_LIST_ACTIONS,
    KMS_ACTIONS,
    POLLER_ACTIONS,
    PolicyError,
    consumer_policy,
    for_chalice,
    forget_policy,
    pixel_policy,
    policy_files,
    render,
)
from devtools.paths import ROOT
from devtools.queue_spec import QueueSettingError, chalice_config, queue_kms_key, stage_environment

KEY = "arn:aws:kms:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
ALIAS = "arn:aws:kms:eu-west-1:123456789012:alias/pixel-relay"


def test_policy_files_are_current_run_make_policies_if_not() -> None:
    files = policy_files()
    assert files, "no stage has its destinations' settings: nothing to check"
    for path, policy in files.items():
        assert path.read_text() == render(policy), f"{path.name} is stale: run make policies"


def test_every_stage_turns_off_chalices_policy_generation() -> None:
    for stage in chalice_config()["stages"].values():
        assert stage["autogen_policy"] is False


def test_every_stage_names_itself_for_the_metrics_stage_dimension() -> None:
    """PIXEL_RELAY_STAGE is the `stage` dimension the alarms filter on: a stage copied from
    another and left with its name would feed the other stage's alarms."""
    for stage in chalice_config()["stages"]:
        assert stage_environment(stage)["PIXEL_RELAY_STAGE"] == stage


def test_the_pixel_may_only_send_to_its_queue_and_write_its_own_logs() -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-dev-api_handler.json").read_text())
    assert policy["Statement"] == [
        {
            "Sid": "WriteOwnLogs",
            "Effect": "Allow",
            "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
            # chalice deploy names the pixel <app>-<stage>.
            "Resource": "arn:*:logs:*:*:log-group:/aws/lambda/pixel-relay-dev:*",
        },
        {
            "Sid": "EnqueueHits",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
            "Resource": "arn:*:sqs:*:*:pixel-relay-dev-events",
        },
    ]


def test_the_consumer_works_its_queues_and_logs_without_change_message_visibility() -> None:
    policy = json.loads((ROOT / ".chalice" / "policy-dev-deliver.json").read_text())
    statements = {s["Sid"]: s for s in policy["Statement"]}
    assert statements["WriteOwnLogs"]["Resource"] == (
        "arn:*:logs:*:*:log-group:/aws/lambda/pixel-relay-dev-deliver:*"
    )
    assert sorted(statements["ConsumeEvents"]["Action"]) == [
        "sqs:DeleteMessage",
        "sqs:GetQueueAttributes",
        "sqs:GetQueueUrl",
        "sqs:ReceiveMessage",
        "sqs:SendMessage",
    ]
    assert statements["ParkRejections"]["Resource"] == "arn:*:sqs:*:*:pixel-relay-dev-events-dlq"


def test_the_consumer_may_write_objects_in_one_domain_only() -> None:
    """The dev stage as shipped: Customer Profiles, the default destination."""
    policy = json.loads((ROOT / ".chalice" / "policy-dev-deliver.json").read_text())
    assert not [s for s in policy["Statement"] if s.get("Sid") == "RecordEvents"]
    [profiles] = [s for s in policy["Statement"] if s.get("Sid") == "PutProfileObjects"]
    assert profiles["Action"] == ["profile:PutProfileObject"]  # BatchPutProfileObject's too
    assert profiles["Resource"] == [
        "arn:*:profile:*:*:domains/pixel-relay-dev/object-types/PixelRelayEvent",
    ]


def test_the_consumer_may_put_events_in_one_project_only() -> None:
    from devtools.deploy.policies import consumer_policy

    environment = {**stage_environment("dev"), "DESTINATIONS": "pinpoint"}
    policy = consumer_policy(environment, "fn")
    [pinpoint] = [s for s in policy["Statement"] if s.get("Sid") == "RecordEvents"]
    assert pinpoint["Action"] == ["mobiletargeting:PutEvents"]
    assert pinpoint["Resource"] == [
        own_arn("mobiletargeting", "apps/dev-application"),
        own_arn("mobiletargeting", "apps/dev-application/*"),
    ]


def test_each_destination_adds_one_statement_on_its_own_resource() -> None:
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "DESTINATIONS": "customer-profiles",
        "PROFILES_DOMAIN": "shop-domain",
    }
    statements = {s.get("Sid"): s for s in consumer_policy(environment, "fn")["Statement"]}
    assert "RecordEvents" not in statements  # no Pinpoint configured: no Pinpoint grant
    assert statements["PutProfileObjects"]["Resource"] == [
        own_arn("profile", "domains/shop-domain/object-types/PixelRelayEvent"),
    ]


def test_signed_hits_let_the_pixel_read_its_one_key_parameter() -> None:
    environment = {"EVENTS_QUEUE": "q", "TOKEN_HS256_KEYS_PARAMETER": "/pixel-relay/keys"}
    [keys] = [
        s for s in pixel_policy(environment, "fn")["Statement"] if s.get("Sid") == "ReadSigningKeys"
    ]
    assert keys["Action"] == ["ssm:GetParameter"]
    assert keys["Resource"] == own_arn("ssm", "parameter/pixel-relay/keys")
    environment["TOKEN_HS256_KEYS_PARAMETER"] = "secretsmanager:pixel-relay/keys"
    [keys] = [
        s for s in pixel_policy(environment, "fn")["Statement"] if s.get("Sid") == "ReadSigningKeys"
    ]
    assert keys["Action"] == ["secretsmanager:GetSecretValue"]


def test_a_destination_that_wildcards_account_or_region_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The old style (`arn:*:profile:*:*:domains/x`) fails `make policies`, naming the fix."""
    plugin = registry.plugin("customer-profiles")

    def old_style(self: Any) -> list[dict[str, Any]]:
        return [
            {
                "Sid": "PutProfileObjects",
                "Effect": "Allow",
                "Action": ["profile:PutProfileObject"],
                "Resource": f"arn:*:profile:*:*:domains/{self.settings.domain}",
            }
        ]

    monkeypatch.setattr(plugin, "iam_statements", old_style)
    environment = {
        "EVENTS_QUEUE": "q",
        "DEAD_LETTER_QUEUE": "dlq",
        "DESTINATIONS": "customer-profiles",
        "PROFILES_DOMAIN": "shop-domain",
    }
    with pytest.raises(
        PolicyError, match=r"destination customer-profiles: .*own_arn\(service, resource\)"
    ):
        consumer_policy(environment, "fn")


# Customer managed KMS key (QUEUE_KMS_KEY) ---------------------------------------------------


def _kms(policy: dict[str, Any]) -> dict[str, Any]:
    [statement] = [s for s in policy["Statement"] if s.get("Sid") == "UseQueueKey"]
    found: dict[str, Any] = statement
    return found


def test_a_queue_key_lets_both_functions_use_that_key_only() -> None:
    environment = {"EVENTS_QUEUE": "q", "DEAD_LETTER_QUEUE": "dlq", "QUEUE_KMS_KEY": KEY}
    environment |= {"DESTINATIONS": "pinpoint", "PINPOINT_APPLICATION_ID": "app"}
    for policy in (pixel_policy(environment, "p"), consumer_policy(environment, "c")):
        statement = _kms(policy)
        # SendMessage needs GenerateDataKey and Decrypt (SQS reuses and checks data keys);
        # receiving needs Decrypt.
        assert statement["Action"] == ["kms:Decrypt", "kms:GenerateDataKey"]
        assert statement["Resource"] == KEY
        assert "Condition" not in statement
        # The key's own ARN is concrete on both paths.
        assert _kms(for_chalice(policy))["Resource"] == KEY
    without = {k: v for k, v in environment.items() if k != "QUEUE_KMS_KEY"}
    assert not [s for s in pixel_policy(without, "p")["Statement"] if s["Sid"] == "UseQueueKey"]


def test_a_key_named_by_alias_is_granted_through_the_alias_condition() -> None:
    """IAM matches keys, not aliases, against Resource: any key of that account and region,
    provided the alias points at it."""
    environment = {"EVENTS_QUEUE": "q", "QUEUE_KMS_KEY": ALIAS}
    statement = _kms(pixel_policy(environment, "p"))
    assert statement["Resource"] == "arn:aws:kms:eu-west-1:123456789012:key/*"
    assert statement["Condition"] == {
        "ForAnyValue:StringEquals": {"kms:ResourceAliases": "alias/pixel-relay"}
    }


@pytest.mark.parametrize(
    "value",
    [
        "1234abcd-12ab-34cd-56ef-1234567890ab",  # a bare key id: no region or account
        "alias/pixel-relay",
        "arn:aws:kms:*:*:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:sqs:eu-west-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
        "arn:aws:kms:eu-west-1:123456789012:alias/aws/sqs",  # AWS managed, not the user's
    ],
)
def test_a_queue_key_that_is_not_a_customer_key_arn_is_refused_naming_the_setting(
    value: str,
) -> None:
    with pytest.raises(QueueSettingError, match="stage dev: QUEUE_KMS_KEY"):
        queue_kms_key({"QUEUE_KMS_KEY": value}, "dev")


def test_an_empty_queue_key_means_sqs_managed_encryption() -> None:
    assert queue_kms_key({"QUEUE_KMS_KEY": " "}) is None
    assert queue_kms_key({}) is None
    multi_region = "arn:aws-cn:kms:cn-north-1:123456789012:key/mrk-" + "0" * 32
    assert queue_kms_key({"QUEUE_KMS_KEY": multi_region}) is not None


# The audit: granted == called -------------------------------------------------------------

# SQS authorizes a batch call as its single action.
BATCH_ACTIONS = {
    "sqs:SendMessageBatch": "sqs:SendMessage",
    "sqs:DeleteMessageBatch": "sqs:DeleteMessage",
    # IAM has no profile:BatchPutProfileObject: PutProfileObject authorizes it.
    "profile:BatchPutProfileObject": "profile:PutProfileObject",
}
# Calls made through a library rather than on a boto3 client: class name -> action.
LIBRARY_CALLS = {
    "SSMProvider": "ssm:GetParameter",
    "SecretsProvider": "secretsmanager:GetSecretValue",
}
LOG_ACTIONS = {"logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"}


def _services_of(tree: ast.Module) -> set[str]:
    services: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("mypy_boto3_"):
            # mypy_boto3_<service> stubs name the service of a module's client.
            module = (node.module or "").removeprefix("mypy_boto3_").split(".")[0]
            services.add(module.replace("_", "-"))
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, (ast.Name, ast.Attribute))
            and (getattr(node.func, "id", None) or getattr(node.func, "attr", None))
            in {"service_client", "client"}
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            services.add(node.args[0].value)
        if (  # a destination plug-in's declaration: service = "customer-profiles"
            isinstance(node, ast.Assign)
            and [getattr(target, "id", None) for target in node.targets] == ["service"]
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            services.add(node.value.value)
    return services


def _operators_code(node: ast.AST) -> bool:
    """Code the operator runs (`make ops ARGS="forget ..."`), never the consumer: a
    destination's `forget`, and a class whose name ends in Eraser."""
    return (isinstance(node, ast.FunctionDef) and node.name == "forget") or (
        isinstance(node, ast.ClassDef) and node.name.endswith("Eraser")
    )


def _client_calls(tree: ast.Module, operator: bool = False) -> set[str]:
    """Methods called on an attribute or name `_client`: self._client.send_message(...);
    in the operator's code (`operator`) or everywhere else."""
    calls: set[str] = set()

    def visit(node: ast.AST, in_operators: bool) -> None:
        in_operators = in_operators or _operators_code(node)
        if (
            in_operators == operator
            and isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
        ):
            owner = node.func.value
            name = owner.attr if isinstance(owner, ast.Attribute) else getattr(owner, "id", "")
            if name == "_client":
                calls.add(node.func.attr)
        for child in ast.iter_child_nodes(node):
            visit(child, in_operators)

    visit(tree, False)
    return calls


def called_actions(operator: bool = False) -> set[str]:
    """Every IAM action chalicelib's code needs, read from its source: the functions' (the
    consumer's and the pixel's), or with `operator` what `forget` calls."""
    actions: set[str] = set()
    for path in sorted((ROOT / "chalicelib").rglob("*.py")):
        source = path.read_text()
        tree = ast.parse(source)
        if not operator:
            actions |= {action for name, action in LIBRARY_CALLS.items() if name in source}
        methods = _client_calls(tree, operator)
        if not methods:
            continue
        services = _services_of(tree)
        if not services and path.parent != ROOT / "chalicelib":
            # A destination package's modules call the client its plug-in declares.
            services = _services_of(ast.parse((path.parent / "__init__.py").read_text()))
        assert len(services) == 1, f"{path.name}: calls {methods} on a client of {services}?"
        [service] = services
        client: Any = boto3.session.Session().client(  # type: ignore[call-overload]
            service, region_name="us-east-1"
        )
        prefix = client.meta.service_model.signing_name
        for method in methods:
            operation = client.meta.method_to_api_mapping[method]
            action = f"{prefix}:{operation}"
            actions.add(BATCH_ACTIONS.get(action, action))
    return actions


def granted_actions(policies: list[dict[str, Any]]) -> set[str]:
    return {action for policy in policies for s in policy["Statement"] for action in s["Action"]}


def everything_environment() -> dict[str, str]:
    """The dev stage with every destination, the dedupe store, signing and a queue key."""
    environment = stage_environment("dev")
    environment["DESTINATIONS"] = ",".join(registry.known())
    environment["DEDUPE_TABLE"] = "pixel-relay-dev-dedupe"
    environment["TOKEN_HS256_KEYS_PARAMETER"] = "/pixel-relay/keys"
    environment["QUEUE_KMS_KEY"] = KEY
    environment["ERASURE_TABLE"] = "pixel-relay-dev-erasure"
    return environment


def test_code_reading_finds_the_calls_it_should() -> None:
    """The reader itself: what the code is known to call is found."""
    found = called_actions()
    assert {
        "sqs:SendMessage",
        "sqs:GetQueueUrl",
        "sqs:DeleteMessage",
        "mobiletargeting:PutEvents",
        "profile:PutProfileObject",
        "dynamodb:BatchGetItem",
        "dynamodb:BatchWriteItem",
        "ssm:GetParameter",
    } <= found


def test_every_action_granted_is_called_and_every_call_is_granted() -> None:
    environment = everything_environment()
    policies = [pixel_policy(environment, "p"), consumer_policy(environment, "c")]
    granted = granted_actions(policies)
    needed = called_actions() | set(POLLER_ACTIONS) | LOG_ACTIONS | set(KMS_ACTIONS)
    # Secrets Manager is the other place signing keys may live (one or the other is granted).
    granted_or_alternative = granted | {"secretsmanager:GetSecretValue"}
    assert needed - granted_or_alternative == set(), "called but not granted"
    assert granted - needed == set(), "granted but never called"


def test_the_operators_forget_is_granted_what_it_calls_and_no_more() -> None:
    """`forget`'s policy: each destination's `forget` calls (read from chalicelib), a
    streaming destination's one send (its consumer's own call, on the same resource), the
    suppression list's writes and the dead-letter queue's reads and deletes; the functions'
    policies get none of the operator's calls."""
    environment = everything_environment()
    granted = granted_actions([forget_policy(environment)])
    announcing = {
        action
        for plugin in registry.configure(registry.known(), environment)
        if plugin.create().announces_erasure
        for statement in plugin.iam_statements()
        for action in statement["Action"]
    }
    needed = (
        called_actions(operator=True)
        | announcing
        | set(FORGET_LIST_ACTIONS)
        | set(FORGET_DEAD_LETTER_ACTIONS)
        | {"kms:Decrypt"}
    )
    assert called_actions(operator=True) >= {
        "profile:SearchProfiles",
        "profile:DeleteProfile",
        "mobiletargeting:DeleteEndpoint",
    }
    assert needed - granted == set(), "called but not granted"
    assert granted - needed == set(), "granted but never called"
    functions = granted_actions([pixel_policy(environment, "p"), consumer_policy(environment, "c")])
    assert functions & (called_actions(operator=True) | set(FORGET_LIST_ACTIONS)) == set()


def test_the_consumer_only_reads_the_suppression_list() -> None:
    environment = everything_environment()
    [statement] = [
        s
        for s in consumer_policy(environment, "c")["Statement"]
        if s["Resource"] == own_arn("dynamodb", "table/pixel-relay-dev-erasure")
    ]
    assert statement["Action"] == ["dynamodb:BatchGetItem"]


def test_forget_file_only_for_a_stage_with_erasure_on(tmp_path: Path) -> None:
    assert not [p for p in policy_files() if p.name.endswith("-forget.json")]
    (tmp_path / ".chalice").mkdir()
    config = chalice_config()
    config["stages"]["dev"]["environment_variables"]["ERASURE_TABLE"] = "pixel-relay-dev-erasure"
    (tmp_path / ".chalice" / "config.json").write_text(json.dumps(config))
    files = policy_files(tmp_path)
    forget = files[tmp_path / ".chalice" / "policy-dev-forget.json"]
    text = json.dumps(forget)
    assert "arn:*:dynamodb:*:*:table/pixel-relay-dev-erasure" in text
    assert "arn:*:sqs:*:*:pixel-relay-dev-events-dlq" in text
    assert "${" not in text


def test_the_pixel_gets_only_the_pixels_calls() -> None:
    environment = everything_environment()
    granted = granted_actions([pixel_policy(environment, "p")])
    assert granted == LOG_ACTIONS | set(KMS_ACTIONS) | {
        "sqs:GetQueueUrl",
        "sqs:SendMessage",
        "ssm:GetParameter",
    }


def test_no_committed_policy_names_every_resource() -> None:
    for path in (ROOT / ".chalice").glob("policy-*.json"):
        for statement in json.loads(path.read_text())["Statement"]:
            granted = statement["Resource"]
            for resource in [granted] if isinstance(granted, str) else granted:
                assert resource != "*"
                # Only partition, region and account may be `*` on this path.
                assert re.fullmatch(r"arn:\*:[a-z-]+:\*:\*:[^*]+(/\*|:\*)?", resource), resource


def test_chalice_form_keeps_resource_names_exact(tmp_path: Path) -> None:
    policy = consumer_policy(stage_environment("dev"), "pixel-relay-dev-deliver")
    text = json.dumps(for_chalice(policy))
    assert "${" not in text
    assert "arn:*:sqs:*:*:pixel-relay-dev-events" in text
