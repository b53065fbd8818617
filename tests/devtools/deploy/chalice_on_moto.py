"""`chalice` as the tests run it against moto's server: the real CLI, with only the two calls
moto cannot answer replaced.

moto has no Swagger 2.0 import: `ImportRestApi` fails (it expects `info.description`) and
`PutRestApi` refuses any document with a `swagger` key (moto 5.2.5, DESIGN.md). Chalice
sends Swagger 2.0 to both. Here `import_rest_api` builds the same API from Chalice's own
document with CreateRestApi, CreateResource, PutMethod and PutIntegration (each route's
Lambda proxy integration, as the import would), and `update_api_from_swagger` (PutRestApi,
overwrite) leaves the routes as they are: this app's routes never change between deploys.
Everything else, roles, functions, the event source mapping, permissions, the deployment,
is Chalice's real code against moto.

CHALICE_ON_MOTO_FAIL=after-import fails the deploy right after the API is created, before
Chalice records anything: a deploy that dies half-way.

    python tests/devtools/deploy/chalice_on_moto.py --project-dir DIR deploy --stage dev
"""

from __future__ import annotations

import os
import sys
from typing import Any

from chalice import awsclient
from chalice.awsclient import TypedAWSClient
from chalice.cli import main

FAIL: str = os.environ.get("CHALICE_ON_MOTO_FAIL", "")


def import_rest_api(
    self: TypedAWSClient, swagger_document: dict[str, Any], endpoint_type: str
) -> str:
    client = self._client("apigateway")
    api_id = str(
        client.create_rest_api(
            name=swagger_document["info"]["title"],
            endpointConfiguration={"types": [endpoint_type]},
        )["id"]
    )
    resources = {r["path"]: r["id"] for r in client.get_resources(restApiId=api_id)["items"]}
    for path, methods in swagger_document["paths"].items():
        parent = "/"
        for part in path.strip("/").split("/"):
            here = parent.rstrip("/") + "/" + part
            if here not in resources:
                created = client.create_resource(
                    restApiId=api_id, parentId=resources[parent], pathPart=part
                )
                resources[here] = created["id"]
            parent = here
        for verb, operation in methods.items():
            integration = operation["x-amazon-apigateway-integration"]
            client.put_method(
                restApiId=api_id,
                resourceId=resources[path],
                httpMethod=verb.upper(),
                authorizationType="NONE",
            )
            client.put_integration(
                restApiId=api_id,
                resourceId=resources[path],
                httpMethod=verb.upper(),
                type=integration["type"].upper(),
                integrationHttpMethod=integration.get("httpMethod", "POST"),
                uri=integration["uri"],
            )
    if FAIL == "after-import":
        raise RuntimeError(f"injected failure after importing REST API {api_id}")
    return api_id


def update_api_from_swagger(
    self: TypedAWSClient, rest_api_id: str, swagger_document: dict[str, Any]
) -> None:
    self._client("apigateway").get_rest_api(restApiId=rest_api_id)  # it must exist


awsclient.TypedAWSClient.import_rest_api = import_rest_api  # type: ignore[method-assign]
awsclient.TypedAWSClient.update_api_from_swagger = update_api_from_swagger  # type: ignore[method-assign]

if __name__ == "__main__":
    sys.exit(main())
