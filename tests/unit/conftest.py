"""Unit tests do no I/O: a test that needs a socket or a process belongs in tests/integration."""

from __future__ import annotations

import pytest

from tests.no_io import forbid_io

# Tests that still open a socket or start a process, in files being reshaped on another branch
# of issue 11 (signing, config). They move to tests/integration there; then their lines go.
AWAITING_MOVE: dict[str, frozenset[str]] = {
    "test_signing.py": frozenset(
        {
            # the hand-built JWKS server (jwks_server fixture)
            "test_hs256_signed_with_the_rsa_public_key_is_refused",
            "test_embedded_jwk_and_jku_headers_are_ignored",
            "test_rs256_and_es256_tokens_verify_against_a_jwks_fetched_once",
            "test_es256_key_refuses_rs256_and_es384",
            "test_unknown_kid_refetches_the_jwks_at_most_once_per_interval",
            "test_jwks_fetch_has_a_timeout",
            "test_jwks_server_error_is_unavailable",
            "test_unusable_jwks_keys_are_skipped",
            "test_jwks_without_usable_keys_is_unavailable",
            "test_issuer_is_checked_for_jwks_tokens",
            "test_audience_is_checked_when_configured",
            "test_hs256_and_jwks_keys_side_by_side",
            "test_one_key_source_down_does_not_stop_tokens_from_the_other",
            # moto's server (moto_url fixture)
            "test_keys_from_an_ssm_secure_string",
            "test_keys_from_a_secrets_manager_secret",
            "test_missing_parameter_is_unavailable_with_the_reason",
            "test_a_stored_value_that_is_not_keys_never_shows_the_value",
        }
    ),
    # a fresh interpreter, to see what a cold import loads
    "test_config.py": frozenset({"test_the_pixel_settings_load_no_service_model"}),
}


@pytest.fixture(autouse=True)
def no_io(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every socket and process call in a unit test raises, naming where the test belongs."""
    if request.node.originalname in AWAITING_MOVE.get(request.path.name, frozenset()):
        return
    forbid_io(monkeypatch)
