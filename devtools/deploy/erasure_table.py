"""The suppression list's table (`ERASURE_TABLE`) on the `chalice deploy` path: created by
`make deploy` as the stack creates it (`template._erasure`): partition key `id` (a string),
no sort key, on demand, encrypted with DynamoDB's own key. Idempotent: a table that is
there already is kept as it is, if its key is the one the list needs.

`make teardown` leaves it: without it, a forgotten visitor's replayed events would be
delivered again (docs/erasure.md says how to delete it once that no longer matters).
Development tooling only: never packaged into Lambda.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from chalicelib.erasure import TABLE_VARIABLE, ErasureSettings

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

KEY_SCHEMA: Final[list[Any]] = [{"AttributeName": "id", "KeyType": "HASH"}]
ATTRIBUTES: Final[list[Any]] = [{"AttributeName": "id", "AttributeType": "S"}]


class ErasureTableError(SystemExit):
    """When the table ERASURE_TABLE names exists with another key."""


@dataclass(frozen=True)
class TableState:
    name: str
    action: str  # "created" or "already as specified"

    def describe(self) -> str:
        return f"{self.name} ({TABLE_VARIABLE}): {self.action}"


def ensure_erasure_table(
    dynamodb: DynamoDBClient, environment: Mapping[str, str]
) -> TableState | None:
    """The stage's suppression list table, created if missing; None with erasure off."""
    table = ErasureSettings.from_env(environment).table
    if table is None:
        return None
    try:
        described = dynamodb.describe_table(TableName=table)["Table"]
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ResourceNotFoundException":
            raise
        dynamodb.create_table(
            TableName=table,
            KeySchema=KEY_SCHEMA,
            AttributeDefinitions=ATTRIBUTES,
            BillingMode="PAY_PER_REQUEST",
        )
        dynamodb.get_waiter("table_exists").wait(
            TableName=table, WaiterConfig={"Delay": 1, "MaxAttempts": 120}
        )
        return TableState(table, "created")
    types = {
        a["AttributeName"]: a["AttributeType"] for a in described.get("AttributeDefinitions", [])
    }
    if described.get("KeySchema") != KEY_SCHEMA or types.get("id") != "S":
        raise ErasureTableError(
            f"{TABLE_VARIABLE} {table} exists with key {described.get('KeySchema')}: the"
            " suppression list needs partition key id (a string) and no sort key; name another"
            " table"
        )
    return TableState(table, "already as specified")
