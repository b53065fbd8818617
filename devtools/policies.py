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

from devtools.queue_spec import ROOT, chalice_config, stage_environment

LOGS: Final = {
    "Effect": "Allow",
    "Action": ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents"],
    "Resource": "arn:*:logs:*:*:*",
}


def queue_arn(name: str) -> str:
    return f"arn:*:sqs:*:*:{name}"


def pixel_policy(environment: dict[str, str]) -> dict[str, Any]:
    """The pixel sends to the events queue, and nothing else."""
    return {
        "Version": "2012-10-17",
        "Statement": [
            LOGS,
            {
                "Sid": "EnqueueHits",
                "Effect": "Allow",
                "Action": ["sqs:GetQueueUrl", "sqs:SendMessage"],
                "Resource": queue_arn(environment["EVENTS_QUEUE"]),
            },
        ],
    }


def consumer_policy(environment: dict[str, str]) -> dict[str, Any]:
    """The consumer works its own queue, parks on its dead-letter queue, and records events
    in the one configured Pinpoint project."""
    application = environment["PINPOINT_APPLICATION_ID"]
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
            {
                "Sid": "RecordEvents",
                "Effect": "Allow",
                "Action": ["mobiletargeting:PutEvents"],
                "Resource": [
                    f"arn:*:mobiletargeting:*:*:apps/{application}",
                    f"arn:*:mobiletargeting:*:*:apps/{application}/*",
                ],
            },
        ],
    }


def policy_files(root: Path = ROOT) -> dict[Path, dict[str, Any]]:
    """Every policy file the config names, with the content it must have.

    A stage whose Pinpoint project id is not set yet gets none: deploying it fails on that
    setting first, naming it.
    """
    config = chalice_config(root)
    files: dict[Path, dict[str, Any]] = {}
    for stage, stage_config in config.get("stages", {}).items():
        environment = stage_environment(stage, root)
        if not environment.get("PINPOINT_APPLICATION_ID"):
            continue
        builders = {"api_handler": pixel_policy, "deliver": consumer_policy}
        for function, settings in stage_config.get("lambda_functions", {}).items():
            name = settings.get("iam_policy_file")
            if name and function in builders:
                files[root / ".chalice" / name] = builders[function](environment)
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
