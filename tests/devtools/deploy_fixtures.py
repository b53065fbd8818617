"""Fixtures for the deploy and operations tooling: moto's server on loopback (reset between
tests), a copy of the Chalice project to deploy from, and one `chalice package` per session."""

from __future__ import annotations

import base64
import copy
import json
import re
import shutil
import sys
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from devtools.deploy.package import PackageResult, lint, package
from devtools.deploy.stage import SERVICES, Clients
from devtools.locks import chalice_environment
from devtools.offline import REGION
from devtools.paths import ROOT
from devtools.process import run

_no_proxy = urllib.request.build_opener(urllib.request.ProxyHandler({}))
PROJECT_FILES = (
    "app.py",
    "chalicelib",
    "requirements.txt",
    "requirements.lock",
    "deploy/stages.json",
)


def lambda_role(iam: Any, name: str) -> str:
    """The ARN of a new role Lambda may assume, as a function needs one."""
    trust = {
        "Version": "2012-10-17",
        "Statement": [
            {
                "Effect": "Allow",
                "Principal": {"Service": "lambda.amazonaws.com"},
                "Action": "sts:AssumeRole",
            }
        ],
    }
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=json.dumps(trust))
    return str(role["Role"]["Arn"])


@pytest.fixture
def moto(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """A clean moto, and every boto3 client (and child process) pointed at it."""
    request = urllib.request.Request(f"{moto_url}/moto-api/reset", method="POST")
    with _no_proxy.open(request, timeout=10):
        pass
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    return moto_url


@pytest.fixture
def sqs(moto: str) -> Any:
    return boto3.client("sqs", endpoint_url=moto, region_name=REGION)


def copy_project(destination: Path) -> Path:
    """The files Chalice deploys, the stage config and policy files, nothing generated."""
    for name in PROJECT_FILES:
        source = ROOT / name
        target = destination / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, target)
    chalice = destination / ".chalice"
    chalice.mkdir()
    shutil.copy2(ROOT / ".chalice" / "config.json", chalice / "config.json")
    for policy in (ROOT / ".chalice").glob("policy-*.json"):
        shutil.copy2(policy, chalice / policy.name)
    return destination


@pytest.fixture
def project(tmp_path: Path) -> Path:
    """A throwaway copy of the project: deploying from it writes nothing into the repo."""
    return copy_project(tmp_path / "project")


@dataclass(frozen=True)
class Packaged:
    result: PackageResult
    sam: dict[str, Any]  # what chalice package wrote
    cloudformation: dict[str, Any]  # the same after the SAM transform
    sam_lint: int
    cloudformation_lint: int


def sam_transform(sam: dict[str, Any], work: Path) -> dict[str, Any]:
    """SAM's own transform, as CloudFormation applies it (code URIs made S3 URIs first, as
    `aws cloudformation package` does)."""
    from samtranslator.translator.transform import transform  # type: ignore[import-untyped]

    template = copy.deepcopy(sam)
    for resource in template["Resources"].values():
        if "CodeUri" in resource.get("Properties", {}):
            resource["Properties"]["CodeUri"] = "s3://pixel-relay-artifacts/deployment.zip"

    class NoManagedPolicies:
        def load(self) -> dict[str, str]:
            return {}

    result: dict[str, Any] = transform(template, {}, NoManagedPolicies())
    (work / "cloudformation.json").write_text(json.dumps(result, indent=1))
    return result


@pytest.fixture(scope="session")
def packaged(tmp_path_factory: pytest.TempPathFactory) -> Packaged:
    """`chalice package --merge-template` for the dev stage, once per session, linted."""
    work = tmp_path_factory.mktemp("package")
    root = copy_project(work / "project")
    result = package("dev", work / "build", root)
    sam = json.loads(result.template.read_text())
    cloudformation = sam_transform(sam, work)
    return Packaged(
        result,
        sam,
        cloudformation,
        lint(result.template, root),
        lint(work / "cloudformation.json", root),
    )


# A pixel behind a stand-in for API Gateway ------------------------------------------------


def _api_gateway(request: Request) -> Response:
    """The real app at /api/events as API Gateway (REST, proxy) serves it with binary media
    types */*: every body is decoded from base64 before it is sent."""
    from app import app
    from tests.integration.harness import proxy_event

    if request.path != "/api/events":
        return Response("Missing Authentication Token", 403)
    passed = ("Accept", "User-Agent", "Referer", "Sec-Fetch-Dest")
    headers = {name: request.headers[name] for name in passed if name in request.headers}
    event = proxy_event(request.query_string.decode("latin-1"), headers)
    answer = app(event, None)
    body = answer["body"]
    raw = base64.b64decode(body) if answer.get("isBase64Encoded") else body.encode()
    return Response(raw, answer["statusCode"], answer["headers"])


def serve_app_as_api_gateway(httpserver: HTTPServer) -> str:
    """The stage's base URL (ending with "/api/") of the app served on `httpserver`."""
    httpserver.expect_request(re.compile("/.*"), method="GET").respond_with_handler(_api_gateway)
    return httpserver.url_for("/api/")


# The `chalice deploy` path on moto --------------------------------------------------------

CHALICE_ON_MOTO = Path(__file__).parent / "deploy" / "chalice_on_moto.py"


def chalice_on_moto(arguments: Sequence[str], root: Path) -> int:
    """The real chalice CLI with moto's missing Swagger import filled in (its docstring)."""
    command = [sys.executable, str(CHALICE_ON_MOTO), "--project-dir", str(root), *arguments]
    return run(command, cwd=root, env=chalice_environment(root))


def moto_clients(endpoint: str) -> Clients:
    return Clients(
        *(boto3.client(name, endpoint_url=endpoint, region_name=REGION) for name in SERVICES)
    )


def stage_resources(clients: Clients) -> dict[str, list[str]]:
    """Everything in moto a deploy makes, by kind: what the convergence tests count."""
    lam = clients.lambda_client
    return {
        "functions": sorted(f["FunctionName"] for f in lam.list_functions()["Functions"]),
        "roles": sorted(r["RoleName"] for r in clients.iam.list_roles()["Roles"]),
        "mappings": [m["UUID"] for m in lam.list_event_source_mappings()["EventSourceMappings"]],
        "rest_apis": [a["id"] for a in clients.apigateway.get_rest_apis()["items"]],
        "queues": sorted(
            url.rsplit("/", 1)[-1] for url in clients.sqs.list_queues().get("QueueUrls", [])
        ),
    }


# The CloudFormation path on moto ---------------------------------------------------------------
# The real packaged template (`packaged`, after SAM's transform) created through moto's
# CloudFormation, so the functions get their template names and the stack its resources.
# moto's CloudFormation lacks `AWS::ApiGateway::Stage`, `AWS::CloudWatch::Alarm` and
# `AWS::CloudWatch::Dashboard`, and its `AWS::ApiGateway::RestApi` neither imports the swagger
# `Body` nor accepts a RestApi without `Name`: those resources and the outputs naming them are
# left out, the API gets a `Name`.

STACK = "pixel-relay-dev"


def _client(moto: str, service: str) -> Any:
    return boto3.client(service, endpoint_url=moto, region_name=REGION)  # type: ignore[call-overload]


# What moto's CloudFormation cannot create (see the module docstring).
MOTO_LACKS = frozenset(
    {
        "AWS::ApiGateway::Stage",
        "AWS::ApiGateway::Deployment",
        "AWS::CloudWatch::Alarm",
        "AWS::CloudWatch::Dashboard",
        "AWS::WAFv2::WebACL",
        "AWS::WAFv2::WebACLAssociation",
        # Customer Profiles (the dev stage's destination): no CloudFormation in moto either.
        "AWS::CustomerProfiles::Domain",
        "AWS::CustomerProfiles::ObjectType",
        "AWS::CustomerProfiles::EventTrigger",
        "AWS::CustomerProfiles::Integration",
        "AWS::Lambda::Alias",
    }
)
ARTIFACTS = "pixel-relay-artifacts"  # sam_transform's CodeUri


def for_moto(template: dict[str, Any], consumer_env: dict[str, str]) -> dict[str, Any]:
    """The packaged template without what moto's CloudFormation lacks; `consumer_env` laid
    over the consumer's environment variables. moto has no `AWS::Lambda::Alias` in its
    CloudFormation either: what invokes the alias `live` invokes the function itself (a test
    that needs the alias makes it with Lambda's API, which moto has)."""
    text = json.dumps(template)
    for function in ("APIHandler", "Deliver"):
        text = text.replace(f'{{"Ref": "{function}Aliaslive"}}', f'{{"Ref": "{function}"}}')
        text = text.replace(f"${{{function}Aliaslive}}", f"${{{function}.Arn}}")
    result: dict[str, Any] = json.loads(text)
    resources = result["Resources"]
    dropped = {name for name, r in resources.items() if r["Type"] in MOTO_LACKS}
    for name in dropped:
        del resources[name]
    result["Outputs"] = {
        key: output
        for key, output in result.get("Outputs", {}).items()
        if not any(name in json.dumps(output) for name in dropped)
    }
    resources["RestAPI"]["Properties"]["Name"] = "pixel-relay"
    resources["Deliver"]["Properties"]["Environment"]["Variables"].update(consumer_env)
    return result


def deploy_stack(moto: str, packaged: Packaged, consumer_env: dict[str, str]) -> None:
    s3 = _client(moto, "s3")
    where = {} if REGION == "us-east-1" else {"LocationConstraint": REGION}
    s3.create_bucket(Bucket=ARTIFACTS, **({"CreateBucketConfiguration": where} if where else {}))
    bundle = packaged.result.package_dir / "deployment.zip"
    s3.put_object(Bucket=ARTIFACTS, Key="deployment.zip", Body=bundle.read_bytes())
    cloudformation = _client(moto, "cloudformation")
    cloudformation.create_stack(
        StackName=STACK,
        TemplateBody=json.dumps(for_moto(packaged.cloudformation, consumer_env)),
        Capabilities=["CAPABILITY_IAM"],
    )
    [stack] = cloudformation.describe_stacks(StackName=STACK)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE"
