"""Least-privilege IAM policies for both functions, one file per stage and function.

Chalice's generated policy reads app.py only, so it misses every call made from chalicelib/
(SendMessage, PutEvents, ...). `autogen_policy` is off in .chalice/config.json and these files
are used instead; `make policies` rewrites them from the stage's settings, and a test fails
when they drift. Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

from chalicelib.config import ConfigError
from chalicelib.destinations import registry
from devtools.paths import ROOT
from devtools.queue_spec import chalice_config, stage_environment

LOGS: Final = {
    "Effect": "Allow",
    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "Resource": "arn:*:logs:*:*:*",
}


def queue_arn(name: str) -> str:
    return f"arn:*:sqs:*:*:{name}"


def pixel_policy(environment: dict[str, str]) -> dict[str, Any]:
    """The pixel sends to the events queue and, for signed hits, reads its one key parameter
    or secret: nothing else."""
    statements: list[dict[str, Any]] = [
        LOGS,
        {
            "Sid": "EnqueueHits",
            "Effect": "Allow",
            "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
            "Resource": queue_arn(environment["EVENTS_QUEUE"]),
        },
    ]
    keys = environment.get("TOKEN_HS256_KEYS_PARAMETER", "").strip()
    if keys:
        statements.append(signing_keys_statement(keys))
    return {"Version": "2012-10-17", "Statement": statements}


def signing_keys_statement(source: str) -> dict[str, Any]:
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
            "Resource": f"arn:*:secretsmanager:*:*:secret:{name}-??????",
        }
    name = source.removeprefix("ssm:").lstrip("/")
    return {
        "Sid": "ReadSigningKeys",
        "Effect": "Allow",
        "Action": ["ssm:GetParameter"],
        "Resource": f"arn:*:ssm:*:*:parameter/{name}",
    }


def destination_statements(environment: dict[str, str]) -> list[dict[str, Any]]:
    """What each configured destination's `SPEC` says it needs, from its own settings (as
    the consumer reads them), in the registry's order whatever the order of DESTINATIONS."""
    configured = registry.parse_names(
        environment.get("DESTINATIONS", registry.DEFAULT_DESTINATIONS)
    )
    statements: list[dict[str, Any]] = []
    for name in registry.known():
        if name in configured:
            spec = registry.spec(name)
            statements.extend(spec.iam_statements(spec.from_env(environment)))
    return statements


def consumer_policy(environment: dict[str, str]) -> dict[str, Any]:
    """The consumer works its own queue, parks on its dead-letter queue, and writes to each
    configured destination's one resource."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            LOGS,
            {
                "Sid": "ConsumeEvents",
                "Effect": "Allow",
                "Action": [
                    "sqs:ReceiveMessage",
                    "sqs:DeleteMessage",
                    "sqs:ChangeMessageVisibility",
                    "sqs:GetQueueAttributes",
                    "sqs:GetQueueUrl",
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
            *destination_statements(environment),
            *dedupe_statements(environment),
        ],
    }


def dedupe_statements(environment: dict[str, str]) -> list[dict[str, Any]]:
    """The optional shared dedupe store (DEDUPE_TABLE): read before sending, write after."""
    table = environment.get("DEDUPE_TABLE", "").strip()
    if not table:
        return []
    return [
        {
            "Sid": "DedupeStore",
            "Effect": "Allow",
            "Action": ["dynamodb:BatchGetItem", "dynamodb:BatchWriteItem"],
            "Resource": f"arn:*:dynamodb:*:*:table/{table}",
        }
    ]


def policy_files(root: Path = ROOT) -> dict[Path, dict[str, Any]]:
    """Every policy file the config names, with the content it must have.

    A stage whose destinations are not set up yet (its Pinpoint project id is empty, say)
    gets none: deploying it fails on that setting first, naming it.
    """
    config = chalice_config(root)
    files: dict[Path, dict[str, Any]] = {}
    for stage, stage_config in config.get("stages", {}).items():
        environment = stage_environment(stage, root)
        try:
            policies = {
                "api_handler": pixel_policy(environment),
                "deliver": consumer_policy(environment),
            }
        except ConfigError:
            continue
        for function, settings in stage_config.get("lambda_functions", {}).items():
            name = settings.get("iam_policy_file")
            if name and function in policies:
                files[root / ".chalice" / name] = policies[function]
    return files


def render(policy: dict[str, Any]) -> str:
    return json.dumps(policy, indent=2) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    for path, policy in policy_files().items():
        path.write_text(render(policy))
        print(f"wrote {path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
