"""Run an `aws ...` command as printed by the tools, through boto3 against a local server, so
a test can check that a remedy works as written.

The AWS CLI's own mapping, read from botocore's model: `aws <service> <operation>` names the
operation in kebab case, each `--member-name` an input member; a structure, list or map
value is JSON, a list of strings may also be the words that follow, an integer is digits, a
boolean member is a flag (`--enabled`, `--no-enabled`). Only what the tools print is
accepted: anything else fails the test, naming what it could not read. (The AWS CLI itself
is not a dependency: v1 pins its own botocore, v2 is not on PyPI.)
"""

from __future__ import annotations

import json
import shlex
from typing import Any

import boto3
from botocore import xform_name

from devtools.offline import REGION

# The CLI's service names where boto3's differ.
SERVICES = {"lambda": "lambda", "sqs": "sqs", "cloudformation": "cloudformation", "logs": "logs"}


def run_aws(command: str, endpoint: str) -> dict[str, Any]:
    """The response of `command` (one `aws ...` command, without pipes or substitutions)."""
    words = shlex.split(command)
    assert words[0] == "aws", command
    service, operation_cli, *rest = words[1:]
    client = boto3.client(SERVICES[service], endpoint_url=endpoint, region_name=REGION)  # type: ignore[call-overload]
    model = client.meta.service_model
    names = {xform_name(name, "-"): name for name in model.operation_names}
    operation = model.operation_model(names[operation_cli])
    members = {
        xform_name(name, "-"): (name, shape)
        for name, shape in operation.input_shape.members.items()
    }
    params: dict[str, Any] = {}
    index = 0
    while index < len(rest):
        option = rest[index]
        assert option.startswith("--"), f"{command}: {option!r} is not an option"
        key = option[2:]
        negated = key.startswith("no-") and key[3:] in members
        name, shape = members[key[3:] if negated else key]
        index += 1
        if shape.type_name == "boolean":
            params[name] = not negated
            continue
        values: list[str] = []
        while index < len(rest) and not rest[index].startswith("--"):
            values.append(rest[index])
            index += 1
        params[name] = _value(shape, values, command)
    method = getattr(client, xform_name(operation.name))
    response: dict[str, Any] = method(**params)
    return response


def _value(shape: Any, values: list[str], command: str) -> Any:
    if shape.type_name in {"structure", "map"} or (
        shape.type_name == "list" and values and values[0].startswith("[")
    ):
        [text] = values
        return json.loads(text)
    if shape.type_name == "list":
        return values
    [text] = values
    if shape.type_name in {"integer", "long"}:
        return int(text)
    assert shape.type_name == "string", f"{command}: cannot read a {shape.type_name}"
    return text
