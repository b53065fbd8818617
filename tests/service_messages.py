"""A service whose error messages quote what they met, for the tests that check no
destination copies such a message into a reason (logs and dead letters hold no id:
docs/operations.md#logs). Each destination's own tests use it with its own fake answers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from botocore.exceptions import ClientError

from chalicelib.events import Event, ProfileUpdate
from chalicelib.outcomes import Outcome, Verdict
from tests.factories import make_event

SECRETS = ("ep-victim", "u-victim", "alice@example.com")
QUOTE = "Profile ep-victim of user u-victim (alice@example.com) is not valid"


def victim() -> Event:
    """An event carrying every kind of identifier a message could quote."""
    return make_event(
        1,
        endpoint_id="ep-victim",
        attributes={"email": "alice@example.com"},
        profile=ProfileUpdate(user_id="u-victim", user_attributes={"plan": ("gold",)}),
    )


def refused(status: int, code: str, operation: str) -> ClientError:
    """A request-level refusal whose message quotes the identifiers."""
    response: Any = {
        "Error": {"Code": code, "Message": QUOTE},
        "ResponseMetadata": {"HTTPStatusCode": status},
    }
    return ClientError(response, operation)


class Answering:
    """A client whose every method answers `answer` (or raises it)."""

    def __init__(self, answer: dict[str, Any] | Exception) -> None:
        self.answer = answer

    def __getattr__(self, name: str) -> Callable[..., dict[str, Any]]:
        def call(**_: Any) -> dict[str, Any]:
            if isinstance(self.answer, Exception):
                raise self.answer
            return self.answer

        return call


def answering(answer: dict[str, Any] | Exception) -> Any:
    """An `Answering` client, typed as any client a destination takes."""
    return Answering(answer)


def assert_reason_without_secrets(outcome: Outcome, reason: str) -> None:
    """Not delivered, with exactly `reason`, and no identifier in any reason it carries."""
    assert outcome.verdict is not Verdict.DELIVERED
    assert outcome.reason == reason
    for text in (outcome.reason, outcome.profile_reason):
        for secret in SECRETS:
            assert secret not in text
