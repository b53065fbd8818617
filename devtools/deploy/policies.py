"""Least-privilege IAM policies for both functions, for both deploy paths.

Chalice's generated policy reads app.py only, so it misses every call made from chalicelib/
(SendMessage, PutEvents, ...). `autogen_policy` is off in .chalice/config.json and these
policies are used instead. Each is built once, in one form, then rendered for a path:

- Resource ARNs are written with CloudFormation's pseudo parameters (`${AWS::Partition}`,
  `${AWS::Region}`, `${AWS::AccountId}`; destinations build theirs with
  `chalicelib.destinations.base.own_arn`).
- The CloudFormation path (`devtools.deploy.template`) wraps them in `Fn::Sub`: every ARN is
  the stack's own partition, region and account.
- The `chalice deploy` path reads `.chalice/policy-<stage>-<function>.json`, which
  `make policies` writes and a test keeps current. Those files are committed and written
  without AWS credentials, so the three parts become `*`: every resource is still named
  exactly (queue, log group, stream, bus, table, key), only its account and region are not.
  Use the CloudFormation path where that matters (docs/deploy.md).
- A stage with erasure on (`ERASURE_TABLE`) also gets `.chalice/policy-<stage>-forget.json`
  (and the stack a managed policy): what an operator needs to run `make ops ARGS="forget
  ..."` (`forget_policy`), for them to attach to their own role or user.

Every action is one the code calls (tests/devtools/deploy/test_policies.py reads chalicelib
for its boto3 calls), one Lambda's SQS poller needs, or a log or KMS action named below.
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Final

from chalicelib.destinations import registry
from chalicelib.destinations.base import DestinationPlugin, Statement, own_arn
from chalicelib.env import ConfigError
from chalicelib.erasure import TABLE_VARIABLE as ERASURE_TABLE
from devtools.paths import ROOT
from devtools.queue_spec import KmsKey, chalice_config, queue_kms_key, stage_environment

Policy = dict[str, Any]
PSEUDO_PARAMETERS: Final = ("${AWS::Partition}", "${AWS::Region}", "${AWS::AccountId}")
# What Lambda's SQS poller calls with the consumer's role (AWSLambdaSQSQueueExecutionRole):
# DeleteMessage also when the handler returns no failures.
POLLER_ACTIONS: Final = ("sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes")
# SQS calls KMS with the caller's permissions: a producer needs GenerateDataKey and Decrypt
# (SQS's key management guide: Decrypt verifies a reused data key), a consumer Decrypt.
KMS_ACTIONS: Final = ("kms:Decrypt", "kms:GenerateDataKey")
_WILDCARD_ARN: Final = re.compile(r"arn:(\*|[^:]*):[^:]+:(\*|[^:]*):(\*|[^:]*):")


class PolicyError(ValueError):
    """A policy pixel-relay refuses to write; the message names where it came from."""


def function_name(stage: str, function: str, root: Path = ROOT) -> str:
    """The Lambda function's name, as `chalice deploy` names it and the CloudFormation path
    sets it (`FunctionName`): <app>-<stage> for the pixel, <app>-<stage>-<function> else."""
    app = chalice_config(root)["app_name"]
    return f"{app}-{stage}" if function == "api_handler" else f"{app}-{stage}-{function}"


def queue_arn(name: str) -> str:
    return own_arn("sqs", name)


def logs_statement(function: str, *, creates_log_group: bool) -> Policy:
    """Write to the function's own log group only. On the CloudFormation path the template
    creates the group, so Lambda is not allowed to (it would race the stack and fail it)."""
    actions = ["logs:CreateLogStream", "logs:PutLogEvents"]
    if creates_log_group:
        actions.insert(0, "logs:CreateLogGroup")
    return {
        "Sid": "WriteOwnLogs",
        "Effect": "Allow",
        "Action": actions,
        "Resource": own_arn("logs", f"log-group:/aws/lambda/{function}:*"),
    }


def kms_statement(key: KmsKey | None) -> list[Policy]:
    """Use of the queues' customer managed key (QUEUE_KMS_KEY), when the stage names one."""
    if key is None:
        return []
    statement: Policy = {
        "Sid": "UseQueueKey",
        "Effect": "Allow",
        "Action": list(KMS_ACTIONS),
        "Resource": key.grantable_arn,
    }
    if key.condition is not None:
        statement["Condition"] = key.condition
    return [statement]


def pixel_policy(
    environment: Mapping[str, str], function: str, *, creates_log_group: bool = True
) -> Policy:
    """The pixel sends to the events queue and, for signed hits, reads its one key parameter
    or secret: nothing else."""
    statements: list[Policy] = [
        logs_statement(function, creates_log_group=creates_log_group),
        {
            "Sid": "EnqueueHits",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
            "Resource": queue_arn(environment["EVENTS_QUEUE"]),
        },
        *kms_statement(queue_kms_key(environment)),
    ]
    keys = environment.get("TOKEN_HS256_KEYS_PARAMETER", "").strip()
    if keys:
        statements.append(signing_keys_statement(keys))
    return {"Version": "2012-10-17", "Statement": statements}


def signing_keys_statement(source: str) -> Policy:
    """Read access to the signing keys, named as TOKEN_HS256_KEYS_PARAMETER names them."""
    if source.startswith("arn:"):
        service = source.split(":")[2]
        action = "ssm:GetParameter" if service == "ssm" else "secretsmanager:GetSecretValue"
        return {"Sid": "ReadSigningKeys", "Effect": "Allow", "Action": [action], "Resource": source}
    if source.startswith("secretsmanager:"):
        name = source.removeprefix("secretsmanager:")
        return {
            "Sid": "ReadSigningKeys",
            "Effect": "Allow",
            "Action": ["secretsmanager:GetSecretValue"],
            # Secrets Manager appends a random suffix to a secret's ARN.
            "Resource": own_arn("secretsmanager", f"secret:{name}-??????"),
        }
    name = source.removeprefix("ssm:").lstrip("/")
    return {
        "Sid": "ReadSigningKeys",
        "Effect": "Allow",
        "Action": ["ssm:GetParameter"],
        "Resource": own_arn("ssm", f"parameter/{name}"),
    }


def destination_statements(environment: Mapping[str, str]) -> list[Policy]:
    """What each configured destination's plug-in says it needs, from its own settings (as
    the consumer reads them), in the registry's order whatever the order of DESTINATIONS.
    A statement that wildcards partition, region or account is refused, naming the module."""
    return _plugin_statements(environment, "iam_statements", lambda p: p.iam_statements())


def _plugin_statements(
    environment: Mapping[str, str],
    hook: str,
    statements_of: Callable[[DestinationPlugin[Any]], Sequence[Statement]],
) -> list[Policy]:
    """Each configured plug-in's statements from `hook`, refused (naming the module and the
    hook) where a resource wildcards partition, region or account."""
    statements: list[Policy] = []
    for plugin in registry.configure(registry.configured_names(environment), environment):
        own = statements_of(plugin)
        for statement in own:
            for resource in resources(statement):
                problem = wildcard_problem(resource)
                if problem:
                    raise PolicyError(
                        f"destination {plugin.name}: {hook} grants {resource!r},"
                        f" which {problem}; build the ARN with"
                        " chalicelib.destinations.base.own_arn(service, resource)"
                    )
        statements.extend(dict(statement) for statement in own)
    return statements


def resources(statement: Mapping[str, Any]) -> list[str]:
    granted = statement["Resource"]
    return [granted] if isinstance(granted, str) else list(granted)


def wildcard_problem(resource: str) -> str | None:
    """Why an ARN is not scoped to one partition, region and account (None when it is).
    The pseudo parameters count as scoped; an empty region or account (IAM, S3) too."""
    if resource == "*":
        return "is every resource"
    for placeholder in PSEUDO_PARAMETERS:
        resource = resource.replace(placeholder, "x")
    match = _WILDCARD_ARN.match(resource)
    if match is None:
        return "is not an ARN"
    if "*" in match.group(1) + match.group(2) + match.group(3):
        return "wildcards the partition, region or account"
    return None


def consumer_policy(
    environment: Mapping[str, str], function: str, *, creates_log_group: bool = True
) -> Policy:
    """The consumer works its own queue (with Lambda's poller), parks on its dead-letter
    queue, and writes to each configured destination's one resource."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            logs_statement(function, creates_log_group=creates_log_group),
            {
                "Sid": "ConsumeEvents",
                "Effect": "Allow",
                "Action": [
                    *POLLER_ACTIONS,
                    "sqs:GetQueueUrl",  # the consumer's own calls: delete and requeue
                    "sqs:SendMessage",
                ],
                "Resource": queue_arn(environment["EVENTS_QUEUE"]),
            },
            {
                "Sid": "ParkRejections",
                "Effect": "Allow",
                "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
                "Resource": queue_arn(environment["DEAD_LETTER_QUEUE"]),
            },
            *kms_statement(queue_kms_key(environment)),
            *destination_statements(environment),
            *dedupe_statements(environment),
            *suppression_read_statements(environment),
        ],
    }


def dedupe_statements(environment: Mapping[str, str]) -> list[Policy]:
    """The optional shared dedupe store (DEDUPE_TABLE): read before sending, write after."""
    table = environment.get("DEDUPE_TABLE", "").strip()
    if not table:
        return []
    return [
        {
            "Sid": "DedupeStore",
            "Effect": "Allow",
            "Action": ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"],
            "Resource": own_arn("dynamodb", f"table/{table}"),
        }
    ]


def suppression_read_statements(environment: Mapping[str, str]) -> list[Policy]:
    """The suppression list (ERASURE_TABLE): the consumer only reads it; the operator's
    `forget` writes it (`forget_policy`)."""
    table = environment.get(ERASURE_TABLE, "").strip()
    if not table:
        return []
    return [
        {
            "Sid": "ReadErasureList",
            "Effect": "Allow",
            "Action": ["dynamodb:BatchGetItem"],
            "Resource": own_arn("dynamodb", f"table/{table}"),
        }
    ]


# What `forget` calls itself (devtools/ops/forget.py, devtools/ops/dlq/erase.py); each
# destination adds its own through its plug-in's `erasure_statements`.
FORGET_LIST_ACTIONS: Final = ("dynamodb:PutItem", "dynamodb:GetItem", "dynamodb:UpdateItem")
FORGET_DEAD_LETTER_ACTIONS: Final = (
    "sqs:GetQueueUrl",
    "sqs:GetQueueAttributes",
    "sqs:ReceiveMessage",
    "sqs:ChangeMessageVisibility",
    "sqs:DeleteMessage",
)


def forget_policy(environment: Mapping[str, str]) -> Policy:
    """What an operator needs to run `make ops ARGS="forget ..."` on a stage with erasure
    on: write the suppression list, read and delete on the dead-letter queue (decrypting
    with the queues' key, if the stage names one), and each configured destination's own
    `erasure_statements`. Nothing of the events queue: the consumer drops what is there."""
    table = environment[ERASURE_TABLE].strip()
    statements: list[Policy] = [
        {
            "Sid": "WriteErasureList",
            "Effect": "Allow",
            "Action": list(FORGET_LIST_ACTIONS),
            "Resource": own_arn("dynamodb", f"table/{table}"),
        },
        {
            "Sid": "EraseDeadLetters",
            "Effect": "Allow",
            "Action": list(FORGET_DEAD_LETTER_ACTIONS),
            "Resource": queue_arn(environment["DEAD_LETTER_QUEUE"]),
        },
    ]
    key = queue_kms_key(environment)
    if key is not None:
        decrypt: Policy = {
            "Sid": "ReadQueueKey",
            "Effect": "Allow",
            "Action": ["kms:Decrypt"],
            "Resource": key.grantable_arn,
        }
        if key.condition is not None:
            decrypt["Condition"] = key.condition
        statements.append(decrypt)
    statements += _plugin_statements(
        environment, "erasure_statements", lambda p: p.erasure_statements()
    )
    return {"Version": "2012-10-17", "Statement": statements}


def forget_policy_file(stage: str) -> str:
    return f"policy-{stage}-forget.json"


def stage_policies(
    stage: str, root: Path = ROOT, *, creates_log_group: bool = True
) -> dict[str, Policy]:
    """Both functions' policies for `stage` (function -> policy, with pseudo parameters).
    Raises ConfigError when a destination's settings are missing."""
    environment = stage_environment(stage, root)
    return {
        "api_handler": pixel_policy(
            environment,
            function_name(stage, "api_handler", root),
            creates_log_group=creates_log_group,
        ),
        "deliver": consumer_policy(
            environment, function_name(stage, "deliver", root), creates_log_group=creates_log_group
        ),
    }


def for_chalice(policy: Policy) -> Policy:
    """The `chalice deploy` form: pseudo parameters become `*` (no credentials are read)."""
    text = json.dumps(policy)
    for placeholder in PSEUDO_PARAMETERS:
        text = text.replace(placeholder, "*")
    result: Policy = json.loads(text)
    return result


def for_cloudformation(policy: Policy) -> Policy:
    """The CloudFormation form: every Resource with a pseudo parameter in an `Fn::Sub`."""

    def sub(resource: str) -> Any:
        return {"Fn::Sub": resource} if "${" in resource else resource

    statements = []
    for statement in policy["Statement"]:
        granted = statement["Resource"]
        statements.append(
            {
                **statement,
                "Resource": sub(granted)
                if isinstance(granted, str)
                else [sub(resource) for resource in granted],
            }
        )
    return {**policy, "Statement": statements}


def policy_files(root: Path = ROOT) -> dict[Path, Policy]:
    """Every policy file the config names, with the content it must have.

    A stage whose destinations are not set up yet (its Pinpoint project id is empty, say)
    gets none: deploying it fails on that setting first, naming it.
    """
    config = chalice_config(root)
    files: dict[Path, Policy] = {}
    for stage, stage_config in config.get("stages", {}).items():
        try:
            policies = stage_policies(stage, root)
        except ConfigError:
            continue
        for function, settings in stage_config.get("lambda_functions", {}).items():
            name = settings.get("iam_policy_file")
            if name and function in policies:
                files[root / ".chalice" / name] = for_chalice(policies[function])
        environment = stage_environment(stage, root)
        if environment.get(ERASURE_TABLE, "").strip():
            forget = for_chalice(forget_policy(environment))
            files[root / ".chalice" / forget_policy_file(stage)] = forget
    return files


def render(policy: Policy) -> str:
    return json.dumps(policy, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    for path, policy in policy_files().items():
        path.write_text(render(policy))
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
