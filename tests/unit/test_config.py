"""Settings fail fast, naming the variable that is wrong."""

from __future__ import annotations

from datetime import timedelta

import pytest

from chalicelib.config import QueueWiring, Settings
from chalicelib.env import ConfigError

VALID = {
    "EVENTS_QUEUE": "events",
    "DEAD_LETTER_QUEUE": "events-dlq",
    "PINPOINT_APPLICATION_ID": "0123456789abcdef0123456789abcdef",
}


def test_defaults_are_secure() -> None:
    settings = Settings.from_env(VALID)
    policy = settings.hit_policy
    assert policy.allowed_user_attributes == frozenset()
    assert policy.allowed_endpoint_attributes == frozenset()
    assert policy.allowed_endpoint_metrics == frozenset()
    assert policy.allow_anonymous_user_id is False
    assert policy.strict_parameters is False
    assert policy.ignored_parameters == frozenset({"gtmcb"})
    assert settings.report_batch_item_failures is False
    assert settings.wiring.batch_size == 100
    assert settings.wiring.batching_window_seconds == 1


def test_lists_and_numbers_are_parsed() -> None:
    settings = Settings.from_env(
        {
            **VALID,
            "ALLOWED_USER_ATTRIBUTES": "plan, interests",
            "IGNORED_PARAMETERS": "gtmcb,cb",
            "MAX_EVENT_AGE_SECONDS": "3600",
            "ALLOW_ANONYMOUS_USER_ID": "TRUE",
            "MAX_CONCURRENCY": "5",
        }
    )
    assert settings.hit_policy.allowed_user_attributes == {"plan", "interests"}
    assert settings.hit_policy.ignored_parameters == {"gtmcb", "cb"}
    assert settings.hit_policy.max_event_age == timedelta(hours=1)
    assert settings.hit_policy.allow_anonymous_user_id is True
    assert settings.wiring.maximum_concurrency == 5


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"EVENTS_QUEUE": ""}, "EVENTS_QUEUE: is required; set it in .chalice/config.json"),
        ({"DEAD_LETTER_QUEUE": "a/b"}, "DEAD_LETTER_QUEUE: must be an SQS queue name"),
        ({"EVENTS_QUEUE": "q" * 81}, "EVENTS_QUEUE: must be an SQS queue name: 1-80"),
        ({"EVENTS_QUEUE": "pixel.events"}, "EVENTS_QUEUE: must be an SQS queue name"),
        ({"EVENTS_QUEUE": "arn:aws:sqs:eu-west-1:1:q"}, "EVENTS_QUEUE: must be an SQS queue"),
        ({"DEAD_LETTER_QUEUE": "q" * 76 + ".fifo"}, "DEAD_LETTER_QUEUE: must be an SQS queue"),
        ({"BATCH_SIZE": "ten"}, "BATCH_SIZE: must be a whole number"),
        ({"BATCH_SIZE": "0"}, "BATCH_SIZE: must be between 1 and 10000"),
        (
            {"BATCH_SIZE": "100", "BATCH_WINDOW_SECONDS": "0"},
            "BATCH_WINDOW_SECONDS: must be at least 1 when BATCH_SIZE > 10",
        ),
        ({"MAX_CONCURRENCY": "1"}, "MAX_CONCURRENCY: must be between 2 and 1000"),
        ({"STRICT_PARAMETERS": "maybe"}, "STRICT_PARAMETERS: must be true or false"),
        ({"ALLOWED_USER_ATTRIBUTES": "a,,b"}, "ALLOWED_USER_ATTRIBUTES: has an empty name"),
        (
            {"ALLOWED_ENDPOINT_ATTRIBUTES": "x" * 51},
            "ALLOWED_ENDPOINT_ATTRIBUTES: names at most 50",
        ),
        ({"ENQUEUE_ATTEMPTS": "4"}, "ENQUEUE_ATTEMPTS: must be between 1 and 3"),
    ],
)
def test_wrong_settings_name_the_variable(changes: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID, **changes})
    assert str(caught.value).startswith(message)


def test_queue_wiring_needs_only_the_queue() -> None:
    wiring = QueueWiring.from_env(
        {"EVENTS_QUEUE": "q", "BATCH_SIZE": "10", "BATCH_WINDOW_SECONDS": "0"}
    )
    assert (wiring.events_queue, wiring.batch_size, wiring.batching_window_seconds) == ("q", 10, 0)


def test_each_destination_checks_its_own_settings() -> None:
    from chalicelib.destinations import registry

    settings = Settings.from_env({**VALID, "PINPOINT_APPLICATION_ID": " "})
    assert settings.destinations == ("customer-profiles",)  # the default since Pinpoint's end
    with pytest.raises(ConfigError, match="PROFILES_DOMAIN: is required"):
        registry.configure(settings.destinations, VALID)
    chosen = {**VALID, "DESTINATIONS": "pinpoint", "PINPOINT_APPLICATION_ID": " "}
    assert Settings.from_env(chosen).destinations == ("pinpoint",)
    with pytest.raises(ConfigError, match="PINPOINT_APPLICATION_ID: is required"):
        registry.configure(("pinpoint",), chosen)


def test_deploy_package_and_local_check_every_setting_at_import(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from chalicelib import runtime

    monkeypatch.setenv("PROFILES_DOMAIN", "")  # the dev stage's DESTINATIONS: the default
    monkeypatch.delenv("AWS_LAMBDA_FUNCTION_NAME", raising=False)
    runtime.reset()
    with pytest.raises(ConfigError, match="PROFILES_DOMAIN"):
        runtime.check_configuration()
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "pixel-relay-dev")  # in Lambda: on first use
    runtime.reset()
    assert runtime.check_configuration().destinations == ("customer-profiles",)


@pytest.mark.parametrize("name", ["q", "pixel-relay_events-1", "q" * 80, "q" * 75 + ".fifo"])
def test_queue_names_follow_sqs_rule(name: str) -> None:
    settings = Settings.from_env({**VALID, "EVENTS_QUEUE": name, "DEAD_LETTER_QUEUE": name})
    assert (settings.wiring.events_queue, settings.dead_letter_queue) == (name, name)


def test_optional_gates_are_none_until_their_variables_are_set() -> None:
    """Cold start: a stage without signed hits or an origin list loads neither module."""
    settings = Settings.from_env(VALID)
    assert (settings.signing, settings.origins, settings.bots.enabled) == (None, None, True)
    configured = Settings.from_env(
        {
            **VALID,
            "TOKEN_PARAMETER": "sig",
            "ALLOWED_PAGE_ORIGINS": "https://shop.example.com",
            "BOT_FILTER": "false",
        }
    )
    assert configured.signing is not None
    assert configured.signing.parameter == "sig"
    assert not configured.signing.enabled
    assert configured.origins is not None
    assert configured.origins.enabled
    assert not configured.bots.enabled


@pytest.mark.parametrize(
    ("changes", "variable"),
    [
        ({"REQUIRE_SIGNED_HITS": "true"}, "REQUIRE_SIGNED_HITS"),
        ({"SIGNED_USER_ATTRIBUTES": "tier"}, "SIGNED_USER_ATTRIBUTES"),
        ({"TOKEN_ISSUER": "https://idp.example"}, "TOKEN_ISSUER"),
        ({"PAGE_ORIGIN_REQUIRED": "maybe"}, "PAGE_ORIGIN_REQUIRED"),
        ({"BOT_FILTER": "maybe"}, "BOT_FILTER"),
    ],
)
def test_optional_gates_still_check_their_variables(changes: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        Settings.from_env({**VALID, **changes})
    assert caught.value.variable == variable
