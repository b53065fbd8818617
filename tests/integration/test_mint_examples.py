"""The minting snippets in examples/ make tokens the pixel's TokenVerifier accepts.

Both run as a backend would run them (a subprocess with the secret in the environment). The
Node.js test is skipped when `node` is missing locally and fails in CI (CI set)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from chalicelib.signing.exceptions import TokenRefusedError
from chalicelib.signing.settings import SigningSettings
from chalicelib.signing.verify import TokenVerifier

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
SECRET = "example-secret-0123456789abcdef-0123456789"
KID = "2026-11"


def python_command() -> list[str]:
    return [sys.executable, str(EXAMPLES / "mint_token.py")]


def node_command() -> list[str]:
    node = shutil.which("node")
    if node is None:
        if os.environ.get("CI"):
            pytest.fail("node is required in CI for the Node.js minting example")
        pytest.skip("node is not installed")
    return [node, str(EXAMPLES / "mint-token.mjs")]


MINTERS = [pytest.param(python_command, id="python"), pytest.param(node_command, id="node")]


def mint(command: list[str], *args: str, secret: str = SECRET) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "PIXEL_TOKEN_SECRET": secret}
    return subprocess.run(
        [*command, "--kid", KID, *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )


def verifier() -> TokenVerifier:
    return TokenVerifier(SigningSettings(hs256_keys={KID: SECRET.encode()}))


@pytest.mark.parametrize("command", MINTERS)
def test_endpoint_token_is_accepted(command: Callable[[], list[str]]) -> None:
    result = mint(command(), "--endpoint-id", "ep-1", "--ttl", "600")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    now = datetime.now(UTC)
    identity = verifier().verify(token, "ep-1", None, now)
    assert identity.user_id is None
    assert identity.key_id == KID
    assert now + timedelta(seconds=590) < identity.expires_at <= now + timedelta(seconds=601)


@pytest.mark.parametrize("command", MINTERS)
def test_user_token_binds_the_user(command: Callable[[], list[str]]) -> None:
    result = mint(command(), "--endpoint-id", "ep-1", "--user-id", "user-42")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    now = datetime.now(UTC)
    assert verifier().verify(token, "ep-1", "user-42", now).user_id == "user-42"
    with pytest.raises(TokenRefusedError) as caught:
        verifier().verify(token, "ep-2", "user-42", now)
    assert caught.value.code == "wrong_endpoint"
    with pytest.raises(TokenRefusedError) as caught:
        verifier().verify(token, "ep-1", "user-43", now)
    assert caught.value.code == "wrong_user"


@pytest.mark.parametrize("command", MINTERS)
def test_an_audience_binds_the_token_to_one_site(command: Callable[[], list[str]]) -> None:
    token = mint(command(), "--endpoint-id", "ep-1", "--audience", "shop-prod").stdout.strip()
    now = datetime.now(UTC)
    prod = TokenVerifier(SigningSettings(hs256_keys={KID: SECRET.encode()}, audience="shop-prod"))
    assert prod.verify(token, "ep-1", None, now).key_id == KID
    staging = TokenVerifier(
        SigningSettings(hs256_keys={KID: SECRET.encode()}, audience="shop-staging")
    )
    with pytest.raises(TokenRefusedError) as caught:
        staging.verify(token, "ep-1", None, now)
    assert caught.value.code == "wrong_audience"


@pytest.mark.parametrize("command", MINTERS)
def test_tokens_expire(command: Callable[[], list[str]]) -> None:
    token = mint(command(), "--endpoint-id", "ep-1", "--ttl", "60").stdout.strip()
    later = datetime.now(UTC) + timedelta(seconds=60 + 61)  # past the 60 s leeway
    with pytest.raises(TokenRefusedError) as caught:
        verifier().verify(token, "ep-1", None, later)
    assert caught.value.code == "expired"


@pytest.mark.parametrize("command", MINTERS)
@pytest.mark.parametrize("secret", ["", "too-short"])
def test_a_missing_or_weak_secret_is_refused_without_echoing_it(
    command: Callable[[], list[str]], secret: str
) -> None:
    result = mint(command(), "--endpoint-id", "ep-1", secret=secret)
    assert result.returncode == 2
    assert result.stdout == ""
    assert "secret" in result.stderr
    assert not secret or secret not in result.stderr
