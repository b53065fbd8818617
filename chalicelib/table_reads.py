"""Which ids a DynamoDB table holds, read the one way the consumer may trust: strongly
consistent, 100 keys a `BatchGetItem` (the API's limit), throttled keys (`UnprocessedKeys`)
asked again a bounded number of rounds, and no call started without the time to finish it.

The dedupe store and the erasure list both ask this before a batch is delivered, and both
must learn "cannot say" rather than a partial answer: `TableUnreadableError` carries the
reason an operator needs (the error's code, `UnprocessedKeys`, or `out of time`).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import BotoCoreError, ClientError

from chalicelib.outcomes import TimeLeft

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient

BATCH_GET_LIMIT: Final = 100  # BatchGetItem's keys per call


class TableUnreadableError(Exception):
    """The table could not say which of the ids it holds."""


class ConsistentReads:
    """Reads of one table by its string partition key `id`, with the rounds and the Lambda
    time a caller allows them."""

    def __init__(
        self, client: DynamoDBClient, table: str, *, rounds: int, min_time_ms: int
    ) -> None:
        self._client = client
        self._table = table
        self._rounds = rounds
        self._min_time_ms = min_time_ms

    def held_items(
        self, ids: Sequence[str], projection: str, time_left: TimeLeft = None
    ) -> Iterator[dict[str, Any]]:
        """The items (with `projection`'s attributes) of those `ids` the table holds;
        raises TableUnreadableError when it cannot tell."""
        table = self._table
        for start in range(0, len(ids), BATCH_GET_LIMIT):
            pending: list[Any] = [{"id": {"S": i}} for i in ids[start : start + BATCH_GET_LIMIT]]
            for _ in range(self._rounds):
                if time_left is not None and time_left() < self._min_time_ms:
                    raise TableUnreadableError("out of time")
                asked: Any = {
                    "Keys": pending,
                    "ConsistentRead": True,
                    "ProjectionExpression": projection,
                }
                try:
                    response = self._client.batch_get_item(RequestItems={table: asked})
                except (BotoCoreError, ClientError) as error:
                    raise TableUnreadableError(error_name(error)) from error
                yield from response.get("Responses", {}).get(table, [])
                unprocessed: Any = response.get("UnprocessedKeys", {}).get(table, {})
                pending = list(unprocessed.get("Keys", []))
                if not pending:
                    break
            if pending:
                raise TableUnreadableError("UnprocessedKeys")


def error_name(error: Exception) -> str:
    """A ClientError's code (ResourceNotFoundException, AccessDeniedException, ...), else
    the exception's class: what an operator needs in the log line."""
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code") or type(error).__name__)
    return type(error).__name__
