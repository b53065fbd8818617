"""What a stage's `chalice deploy` left in AWS, found there by name rather than read from one
checkout's `.chalice/deployed/`: the deploy adopts it, the teardown deletes it.

Chalice finds its functions and roles by name on its own, but it knows the REST API and the
SQS event source mapping only from `.chalice/deployed/<stage>.json`, which a fresh clone does
not have and a failed deploy never writes: without it Chalice imports a second API (a new
URL) and creates a second mapping (ResourceConflictException on AWS, aws/chalice #2146,
#1075). So before every `chalice deploy` the file is written from what is found here
(`chalice_state`), and Chalice updates those resources in place.

How each resource is recognised (Chalice 1.x names, for app `pixel-relay` and stage `dev`):

- functions: `pixel-relay-dev` (the API handler) and `pixel-relay-dev-<function>`, carrying
  Chalice's tag `aws-chalice: version=...:stage=dev:app=pixel-relay` (so stage `dev` never
  claims stage `dev-eu`'s `pixel-relay-dev-eu-deliver`);
- roles: `pixel-relay-dev-<function>` for each function of the stage (one policy file each);
- the mapping: from the stage's events queue to its `deliver` function (and any other
  mapping of the stage's functions, which teardown removes too);
- the REST API: named `pixel-relay` (every stage's API has that name) with a method whose
  integration invokes this stage's API handler, `...:function:pixel-relay-dev/invocations`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Final

from botocore.exceptions import ClientError

from devtools.paths import CHALICE_DIR, ROOT
from devtools.queue_spec import QueueSpec, chalice_config

API_HANDLER: Final = "api_handler"  # Chalice's resource name for the function behind the routes
CONSUMER: Final = "deliver"
CHALICE_TAG: Final = "aws-chalice"
INVOKED_FUNCTION: Final = re.compile(r":function:([^/:]+)(?::[^/]+)?/invocations$")


def deployed_state_file(stage: str, root: Path = ROOT) -> Path:
    return root / CHALICE_DIR / "deployed" / f"{stage}.json"


@dataclass(frozen=True)
class StageNames:
    """The names Chalice gives a stage's resources."""

    app: str
    stage: str
    functions: tuple[str, ...]  # resource names: api_handler, deliver
    api_gateway_stage: str
    events_queue: str
    dead_letter_queue: str

    @classmethod
    def for_stage(cls, stage: str, root: Path = ROOT) -> StageNames:
        config = chalice_config(root)
        stage_config = config.get("stages", {}).get(stage, {})
        spec = QueueSpec.for_stage(stage, root)
        functions = tuple(stage_config.get("lambda_functions", {})) or (API_HANDLER, CONSUMER)
        return cls(
            app=str(config["app_name"]),
            stage=stage,
            functions=functions,
            api_gateway_stage=str(
                stage_config.get("api_gateway_stage", config.get("api_gateway_stage", "api"))
            ),
            events_queue=spec.events_queue,
            dead_letter_queue=spec.dead_letter_queue,
        )

    @property
    def prefix(self) -> str:
        return f"{self.app}-{self.stage}"

    def function_name(self, resource: str) -> str:
        return self.prefix if resource == API_HANDLER else f"{self.prefix}-{resource}"

    def role_name(self, resource: str) -> str:
        return f"{self.prefix}-{resource}"

    def resource_of(self, function_name: str) -> str | None:
        """The resource name of one of this stage's function names, else None."""
        if function_name == self.prefix:
            return API_HANDLER
        if function_name.startswith(self.prefix + "-"):
            return function_name.removeprefix(self.prefix + "-")
        return None

    def tagged_as_mine(self, tag: str) -> bool:
        # version=1.34.0:stage=dev:app=pixel-relay
        parts = dict(part.split("=", 1) for part in tag.split(":") if "=" in part)
        return parts.get("stage") == self.stage and parts.get("app") == self.app


@dataclass(frozen=True)
class RestApi:
    id: str
    created: datetime | None

    def url(self, region: str, api_gateway_stage: str) -> str:
        suffix = "amazonaws.com.cn" if region.startswith("cn-") else "amazonaws.com"
        return f"https://{self.id}.execute-api.{region}.{suffix}/{api_gateway_stage}/"


@dataclass
class Inventory:
    """One stage's resources as found in AWS."""

    names: StageNames
    region: str
    functions: dict[str, str] = field(default_factory=dict)  # resource name -> function ARN
    roles: dict[str, str] = field(default_factory=dict)  # role name -> ARN
    mappings: list[dict[str, Any]] = field(default_factory=list)  # of the stage's functions
    rest_apis: list[RestApi] = field(default_factory=list)  # oldest first
    queues: dict[str, str] = field(default_factory=dict)  # name -> URL, the ones that exist

    def consumer_mappings(self, events_queue_arn: str) -> list[dict[str, Any]]:
        """The mappings from the events queue to the consumer (Chalice's one)."""
        consumer = self.functions.get(CONSUMER)
        return [
            mapping
            for mapping in self.mappings
            if mapping.get("EventSourceArn") == events_queue_arn
            and consumer is not None
            and _unqualified(str(mapping.get("FunctionArn", ""))) == consumer
        ]

    def describe(self) -> list[str]:
        lines = [f"function {arn.split(':')[-1]}" for arn in self.functions.values()]
        lines += [f"role {name}" for name in self.roles]
        lines += [
            f"event source mapping {m['UUID']} ({str(m.get('EventSourceArn')).split(':')[-1]}"
            f" -> {str(m.get('FunctionArn')).split(':')[-1]})"
            for m in self.mappings
        ]
        lines += [
            f"REST API {api.id} ({api.url(self.region, self.names.api_gateway_stage)})"
            for api in self.rest_apis
        ]
        lines += [f"queue {name}" for name in self.queues]
        return lines


def _unqualified(function_arn: str) -> str:
    """arn:...:function:name[:qualifier] without the qualifier."""
    head, _, tail = function_arn.partition(":function:")
    return f"{head}:function:{tail.split(':')[0]}" if tail else function_arn


def _timestamp(value: Any) -> float:
    return value.timestamp() if isinstance(value, datetime) else 0.0


def _not_found(error: ClientError) -> bool:
    code = error.response.get("Error", {}).get("Code", "")
    return code in {
        "ResourceNotFoundException",
        "NoSuchEntity",
        "NotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }


def find_functions(lambda_client: Any, names: StageNames) -> dict[str, str]:
    """The stage's functions: by name, confirmed by Chalice's stage tag."""
    found: dict[str, str] = {}
    for page in lambda_client.get_paginator("list_functions").paginate():
        for function in page.get("Functions", []):
            resource = names.resource_of(str(function["FunctionName"]))
            if resource is None:
                continue
            arn = str(function["FunctionArn"])
            tags = lambda_client.list_tags(Resource=arn).get("Tags", {})
            if names.tagged_as_mine(str(tags.get(CHALICE_TAG, ""))):
                found[resource] = arn
    return found


def find_roles(iam: Any, names: StageNames, resources: set[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for resource in sorted(resources):
        role_name = names.role_name(resource)
        try:
            found[role_name] = str(iam.get_role(RoleName=role_name)["Role"]["Arn"])
        except ClientError as error:
            if not _not_found(error):
                raise
    return found


def find_mappings(lambda_client: Any, function_arns: list[str]) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    for arn in function_arns:
        paginator = lambda_client.get_paginator("list_event_source_mappings")
        for page in paginator.paginate(FunctionName=arn):
            for mapping in page.get("EventSourceMappings", []):
                if _unqualified(str(mapping.get("FunctionArn", ""))) == arn:
                    found.append(mapping)
    return found


def _invoked_functions(apigateway: Any, api_id: str) -> set[str]:
    """The names of the functions the API's methods invoke (AWS_PROXY integrations)."""
    invoked: set[str] = set()
    pages = apigateway.get_paginator("get_resources").paginate(restApiId=api_id, embed=["methods"])
    for page in pages:
        for resource in page.get("items", []):
            for method, body in (resource.get("resourceMethods") or {}).items():
                uri = ((body or {}).get("methodIntegration") or {}).get("uri")
                if uri is None:  # not embedded: ask for it
                    try:
                        uri = apigateway.get_integration(
                            restApiId=api_id, resourceId=resource["id"], httpMethod=method
                        ).get("uri")
                    except ClientError as error:
                        if _not_found(error):
                            continue
                        raise
                match = INVOKED_FUNCTION.search(str(uri or ""))
                if match:
                    invoked.add(match.group(1))
    return invoked


def find_rest_apis(apigateway: Any, names: StageNames) -> list[RestApi]:
    """The APIs named after the app that invoke this stage's API handler, oldest first."""
    handler = names.function_name(API_HANDLER)
    found: list[RestApi] = []
    for page in apigateway.get_paginator("get_rest_apis").paginate():
        for api in page.get("items", []):
            if api.get("name") != names.app:
                continue
            if handler in _invoked_functions(apigateway, str(api["id"])):
                found.append(RestApi(str(api["id"]), api.get("createdDate")))
    return sorted(found, key=lambda api: (api.created is None, _timestamp(api.created), api.id))


def find_queues(sqs: Any, names: StageNames) -> dict[str, str]:
    found: dict[str, str] = {}
    for name in (names.events_queue, names.dead_letter_queue):
        try:
            found[name] = str(sqs.get_queue_url(QueueName=name)["QueueUrl"])
        except ClientError as error:
            if not _not_found(error):
                raise
    return found


def find(
    names: StageNames, region: str, sqs: Any, lambda_client: Any, iam: Any, apigateway: Any
) -> Inventory:
    functions = find_functions(lambda_client, names)
    return Inventory(
        names=names,
        region=region,
        functions=functions,
        roles=find_roles(iam, names, set(names.functions) | set(functions)),
        mappings=find_mappings(lambda_client, list(functions.values())),
        rest_apis=find_rest_apis(apigateway, names),
        queues=find_queues(sqs, names),
    )


# Chalice's record, rebuilt -----------------------------------------------------------------


def recorded_values(stage: str, root: Path = ROOT) -> dict[str, dict[str, Any]]:
    """This checkout's `.chalice/deployed/<stage>.json` by resource name ({} without one)."""
    path = deployed_state_file(stage, root)
    try:
        document = json.loads(path.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(r.get("name")): r for r in document.get("resources", []) if isinstance(r, dict)}


@dataclass
class Adoption:
    """What the next `chalice deploy` is told already exists, and what is left over."""

    state: dict[str, Any]
    rest_api: RestApi | None
    mapping: dict[str, Any] | None
    extra_rest_apis: list[RestApi]
    extra_mappings: list[dict[str, Any]]


def chalice_state(
    inventory: Inventory,
    events_queue_arn: str,
    recorded: dict[str, dict[str, Any]],
) -> Adoption:
    """`.chalice/deployed/<stage>.json` as Chalice would have written it for what exists.

    Of several APIs the one this checkout recorded is kept, else the oldest (the URL most
    likely in the GTM tag); of several mappings the recorded one, else one with partial
    batch responses on, else the oldest. The rest are returned, not deleted here.
    """
    names = inventory.names
    resources: list[dict[str, Any]] = []
    for resource in names.functions:
        role_name = names.role_name(resource)
        if role_name in inventory.roles:
            resources.append(
                {
                    "name": f"{resource}_role",
                    "resource_type": "iam_role",
                    "role_arn": inventory.roles[role_name],
                    "role_name": role_name,
                }
            )
        if resource in inventory.functions:
            resources.append(
                {
                    "name": resource,
                    "resource_type": "lambda_function",
                    "lambda_arn": inventory.functions[resource],
                }
            )
    mappings = inventory.consumer_mappings(events_queue_arn)
    recorded_uuid = recorded.get(f"{CONSUMER}-sqs-event-source", {}).get("event_uuid")
    mappings.sort(
        key=lambda m: (
            m.get("UUID") != recorded_uuid,
            "ReportBatchItemFailures" not in (m.get("FunctionResponseTypes") or []),
            _timestamp(m.get("LastModified")),
        )
    )
    mapping = mappings[0] if mappings else None
    if mapping is not None:
        resources.append(
            {
                "name": f"{CONSUMER}-sqs-event-source",
                "resource_type": "sqs_event",
                "queue_arn": events_queue_arn,
                "event_uuid": mapping["UUID"],
                "queue": names.events_queue,
                "lambda_arn": inventory.functions[CONSUMER],
            }
        )
    recorded_api = recorded.get("rest_api", {}).get("rest_api_id")
    apis = sorted(inventory.rest_apis, key=lambda api: api.id != recorded_api)  # stable
    rest_api = apis[0] if apis else None
    if rest_api is not None:
        resources.append(
            {
                "name": "rest_api",
                "resource_type": "rest_api",
                "rest_api_id": rest_api.id,
                "rest_api_url": rest_api.url(inventory.region, names.api_gateway_stage),
            }
        )
    return Adoption(
        state={"resources": resources, "schema_version": "2.0", "backend": "api"},
        rest_api=rest_api,
        mapping=mapping,
        extra_rest_apis=apis[1:],
        extra_mappings=mappings[1:],
    )
