"""Signed hits: every way a token can fail, key rotation and the settings, with keys held in
memory or handed in by a loader. The key sources that need a server (SSM, Secrets Manager, a
JWKS URL) are tested over loopback in tests/integration/test_signing_keys.py."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.env import ConfigError
from chalicelib.hits import HitPolicy
from chalicelib.signing.exceptions import KeysUnavailableError, TokenRefusedError
from chalicelib.signing.settings import KeySource, SigningSettings, signed_policy
from chalicelib.signing.verify import SignedIdentity, TokenVerifier
from tests.tokens import (
    EXP,
    ISSUER,
    NEW_SECRET,
    NOW,
    SECRET,
    AsymmetricKeys,
    FakeClock,
    asymmetric_keys,
    b64,
    claims,
    hs256,
    refusal,
)

OTHER_SECRET = "another-secret-for-tests-0123456789abcdef"
FUZZ = settings(
    max_examples=150,
    deadline=None,
    database=None,
    derandomize=bool(os.environ.get("CI")),
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


def hand_made(header: Mapping[str, Any], payload: Mapping[str, Any], signature: bytes) -> str:
    return ".".join(
        [b64(json.dumps(header).encode()), b64(json.dumps(payload).encode()), b64(signature)]
    )


def hs_verifier(keys: Mapping[str, str] | None = None, **options: Any) -> TokenVerifier:
    raw = {kid: secret.encode() for kid, secret in (keys or {"k1": SECRET}).items()}
    return TokenVerifier(SigningSettings(hs256_keys=raw, **options))


# Keys ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> AsymmetricKeys:
    return asymmetric_keys()


# A valid token ------------------------------------------------------------------------------------


def test_valid_token_vouches_for_endpoint_user_and_key() -> None:
    identity = hs_verifier().verify(hs256(claims()), "ep-1", "user-1", NOW)
    assert identity == SignedIdentity(
        endpoint_id="ep-1",
        user_id="user-1",
        key_id="k1",
        expires_at=datetime.fromtimestamp(EXP, UTC),
    )


def test_token_without_user_id_in_the_hit_still_names_its_subject() -> None:
    identity = hs_verifier().verify(hs256(claims()), "ep-1", None, NOW)
    assert identity.user_id == "user-1"


def test_token_without_subject_is_an_endpoint_only_token() -> None:
    identity = hs_verifier().verify(hs256(claims(sub=None)), "ep-1", None, NOW)
    assert identity.user_id is None


def test_the_audience_binds_hs256_tokens_to_one_site() -> None:
    """Several sites minting with one shared key (or one backend for staging and production)
    set TOKEN_AUDIENCE apiece: a token minted for one does not pass at the other."""
    verifier = hs_verifier(audience="shop-prod")
    assert verifier.verify(hs256(claims(aud="shop-prod")), "ep-1", None, NOW).key_id == "k1"
    assert verifier.verify(hs256(claims(aud=["other", "shop-prod"])), "ep-1", None, NOW)
    other = refusal(verifier, hs256(claims(aud="shop-staging")))
    assert (other.code, str(other)) == (
        "wrong_audience",
        "was issued for another audience (TOKEN_AUDIENCE)",
    )
    missing = refusal(verifier, hs256(claims()))
    assert (missing.code, str(missing)) == ("missing_claim", "lacks the aud claim (TOKEN_AUDIENCE)")


def test_without_an_audience_setting_hs256_tokens_need_none() -> None:
    assert hs_verifier().verify(hs256(claims(aud="anything")), "ep-1", None, NOW)
    assert hs_verifier().verify(hs256(claims()), "ep-1", None, NOW)


# Time -------------------------------------------------------------------------------------------


def test_expired_token_is_refused_after_the_leeway() -> None:
    verifier = hs_verifier(leeway_seconds=60)
    now = int(NOW.timestamp())
    assert verifier.verify(hs256(claims(exp=now - 59)), "ep-1", None, NOW)
    error = refusal(verifier, hs256(claims(exp=now - 60)))
    assert (error.code, str(error)) == ("expired", "has expired")


@pytest.mark.parametrize("claim", ["nbf", "iat"])
def test_token_not_valid_yet_is_refused_beyond_the_leeway(claim: str) -> None:
    verifier = hs_verifier(leeway_seconds=60)
    now = int(NOW.timestamp())
    assert verifier.verify(hs256(claims(**{claim: now + 60})), "ep-1", None, NOW)
    error = refusal(verifier, hs256(claims(**{claim: now + 61})))
    assert (error.code, str(error)) == ("not_yet_valid", f"is not valid yet ({claim})")


def test_expiry_is_required() -> None:
    error = refusal(hs_verifier(), hs256(claims(exp=None)))
    assert (error.code, str(error)) == ("missing_claim", "lacks the exp claim")


def test_token_living_longer_than_the_maximum_is_refused() -> None:
    far = int((NOW + timedelta(days=2)).timestamp())
    error = refusal(hs_verifier(max_lifetime_seconds=86_400), hs256(claims(exp=far)))
    assert error.code == "too_long_lived"


@pytest.mark.parametrize("exp", ["1700000000", True, 1e400, float("nan"), 1e20, [EXP]])
def test_expiry_must_be_a_numeric_date(exp: object) -> None:
    payload = {"eid": "ep-1", "exp": exp}
    token = hand_made(
        {"alg": "HS256", "kid": "k1"},
        payload,
        b"",
    )
    # Signed properly, so only the claim is wrong.
    signing_input = token.rsplit(".", 1)[0].encode()
    token = (
        signing_input.decode()
        + "."
        + b64(hmac.new(SECRET.encode(), signing_input, hashlib.sha256).digest())
    )
    assert refusal(hs_verifier(), token).code == "malformed"


def properly_signed(payload: Mapping[str, Any]) -> str:
    """A token whose signature verifies, with a payload jwt.encode would refuse to write."""
    signing_input = ".".join(
        [b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode()), b64(json.dumps(payload).encode())]
    )
    signature = hmac.new(SECRET.encode(), signing_input.encode(), hashlib.sha256).digest()
    return signing_input + "." + b64(signature)


@pytest.mark.parametrize("claim", ["exp", "nbf", "iat"])
@pytest.mark.parametrize("value", [10**400, -(10**400), 2**1024])
def test_huge_integer_time_claims_are_refused_naming_the_claim(claim: str, value: int) -> None:
    """Found by review: an int too large for a float made the check raise OverflowError,
    which the pixel answered as a 503 (a defect) instead of a 400 (a bad token)."""
    error = refusal(hs_verifier(), properly_signed(claims(**{claim: value})))
    assert error.code == "malformed"
    assert str(error) == f"{claim} is out of range"


# Signature and algorithm ------------------------------------------------------------------------


def test_token_signed_with_another_key_is_refused() -> None:
    error = refusal(hs_verifier(), hs256(claims(), secret=OTHER_SECRET))
    assert (error.code, str(error)) == ("bad_signature", "signature does not verify")


def test_tampered_payload_is_refused() -> None:
    header, _, signature = hs256(claims(eid="ep-1")).split(".")
    forged = b64(json.dumps(claims(eid="victim")).encode())
    error = refusal(hs_verifier(), f"{header}.{forged}.{signature}", endpoint="victim")
    assert error.code == "bad_signature"


@pytest.mark.parametrize("alg", ["none", "None", "NONE", ""])
def test_alg_none_is_refused(alg: str) -> None:
    token = hand_made({"alg": alg, "kid": "k1", "typ": "JWT"}, claims(), b"")
    assert refusal(hs_verifier(), token).code == "bad_algorithm"


def test_other_hmac_algorithms_are_refused_for_shared_secrets() -> None:
    token = jwt.encode(claims(), SECRET * 2, algorithm="HS512", headers={"kid": "k1"})
    assert refusal(hs_verifier(), token).code == "bad_algorithm"


def test_rs256_token_naming_a_shared_secret_key_is_refused(keys: AsymmetricKeys) -> None:
    token = jwt.encode(claims(), keys.rsa, algorithm="RS256", headers={"kid": "k1"})
    assert refusal(hs_verifier(), token).code == "bad_algorithm"


# Binding to the hit -----------------------------------------------------------------------------


def test_token_for_endpoint_a_never_authorizes_endpoint_b() -> None:
    error = refusal(hs_verifier(), hs256(claims(eid="ep-A")), endpoint="ep-B")
    assert (error.code, str(error)) == ("wrong_endpoint", "was issued for another endpoint_id")


def test_endpoint_claim_is_required() -> None:
    error = refusal(hs_verifier(), hs256(claims(eid=None)))
    assert (error.code, str(error)) == ("missing_claim", "lacks the eid claim")


@pytest.mark.parametrize("eid", [1, ["ep-1"], {"id": "ep-1"}, "EP-1", "ep-1 "])
def test_endpoint_claim_must_match_exactly(eid: object) -> None:
    assert refusal(hs_verifier(), hs256(claims(eid=eid))).code == "wrong_endpoint"


def test_token_for_user_a_never_authorizes_user_b() -> None:
    error = refusal(hs_verifier(), hs256(claims(sub="user-A")), user="user-B")
    assert (error.code, str(error)) == ("wrong_user", "was not issued for this user_id")


def test_token_without_subject_cannot_set_a_user_id() -> None:
    assert refusal(hs_verifier(), hs256(claims(sub=None)), user="user-1").code == "wrong_user"


# Shape and size ---------------------------------------------------------------------------------


def test_oversized_token_is_refused_before_any_parsing() -> None:
    calls: list[int] = []

    def loader() -> Mapping[str, bytes]:
        calls.append(1)
        return {"k1": SECRET.encode()}

    verifier = TokenVerifier(
        SigningSettings(hs256_keys={"k1": b"x" * 32}, max_bytes=256), hs256_keys=loader
    )
    error = refusal(verifier, hs256(claims(pad="x" * 300)))
    assert (error.code, str(error)) == ("too_large", "is longer than 256 bytes (TOKEN_MAX_BYTES)")
    assert calls == []


@pytest.mark.parametrize(
    "token",
    [
        "",
        "abc",
        "a.b",
        "a.b.c",
        "....",
        "eyJ.eyJ.sig",
        "é.é.é",
        b64(b"[1]") + "." + b64(b"{}") + ".",
        b64(b'{"alg":"HS256","kid":"k1"') + "." + b64(b"{}") + ".",
        b64(b'{"alg":"HS256","kid":7}') + "." + b64(b"{}") + ".",
        b64(b'{"alg":"HS256","kid":"k1","crit":["exp"]}') + "." + b64(b"{}") + ".",
    ],
)
def test_malformed_tokens_are_refused(token: str) -> None:
    error = refusal(hs_verifier(), token)
    assert (error.code, str(error)) == ("malformed", "is not a well-formed JSON Web Token")


def test_signed_payload_that_is_not_an_object_is_malformed() -> None:
    header = b64(json.dumps({"alg": "HS256", "kid": "k1"}).encode())
    unsigned = f"{header}.{b64(b'[1,2]')}"
    signature = hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).digest()
    assert refusal(hs_verifier(), f"{unsigned}.{b64(signature)}").code == "malformed"


@pytest.mark.parametrize("kid", [None, ""])
def test_token_must_name_its_key(kid: str | None) -> None:
    error = refusal(hs_verifier(), hs256(claims(), kid=kid))
    assert (error.code, str(error)) == ("unknown_key", "names no key id (kid)")


def test_unknown_key_id_is_refused() -> None:
    error = refusal(hs_verifier(), hs256(claims(), kid="k9"))
    assert (error.code, str(error)) == (
        "unknown_key",
        "names a key id (kid) that is not configured",
    )


@FUZZ
@given(st.text(max_size=400))
def test_any_text_is_refused_with_a_reason_never_an_exception(text: str) -> None:
    verifier = hs_verifier()
    with pytest.raises(TokenRefusedError):
        verifier.verify(text, "ep-1", None, NOW)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)


@FUZZ
@given(
    header=st.dictionaries(
        st.sampled_from(["alg", "kid", "typ", "crit", "b64", "jku", "x"]), JSON, max_size=5
    ),
    payload=JSON,
    sign=st.booleans(),
)
def test_any_json_token_is_accepted_or_refused_never_an_exception(
    header: dict[str, Any], payload: Any, sign: bool
) -> None:
    try:
        unsigned = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(payload).encode())}"
    except ValueError:
        return
    signature = (
        hmac.new(SECRET.encode(), unsigned.encode(), hashlib.sha256).digest() if sign else b"x"
    )
    try:
        identity = hs_verifier().verify(f"{unsigned}.{b64(signature)}", "ep-1", None, NOW)
    except TokenRefusedError:
        return
    assert identity.endpoint_id == "ep-1"


# Refusal messages -------------------------------------------------------------------------------


def test_refusals_never_show_the_secret_the_token_or_claim_values(keys: AsymmetricKeys) -> None:
    verifier = hs_verifier({"k1": SECRET})
    now = int(NOW.timestamp())
    tokens = [
        hs256(claims(eid="secret-endpoint", sub="secret-user"), kid="k1"),
        hs256(claims(exp=now - 3600, eid="secret-endpoint")),
        hs256(claims(nbf=now + 3600, eid="secret-endpoint")),
        hs256(claims(eid="secret-endpoint"), secret=OTHER_SECRET),
        hs256(claims(eid="secret-endpoint"), kid="secret-kid"),
        hand_made({"alg": "none", "kid": "k1"}, claims(eid="secret-endpoint"), b""),
        jwt.encode(
            claims(eid="secret-endpoint"), keys.rsa, algorithm="RS256", headers={"kid": "k1"}
        ),
        hs256(claims(eid="secret-endpoint", pad="x" * 3000)),
        hs256(claims(eid="secret-endpoint", exp=None)),
        "not-a-token-secret-endpoint",
    ]
    codes = set()
    for token in tokens:
        error = refusal(verifier, token, endpoint="ep-1", user="other-user")
        codes.add(error.code)
        message = str(error)
        for forbidden in (SECRET, token, "secret-endpoint", "secret-user", "secret-kid"):
            assert forbidden not in message
        assert message.isascii()
        assert len(message) < 80
    assert codes == {
        "wrong_endpoint",
        "expired",
        "not_yet_valid",
        "bad_signature",
        "unknown_key",
        "bad_algorithm",
        "too_large",
        "missing_claim",
        "malformed",
    }


# Key rotation -----------------------------------------------------------------------------------


def test_several_keys_at_once_chosen_by_kid() -> None:
    verifier = hs_verifier({"2026-10": SECRET, "2026-11": NEW_SECRET})
    old = verifier.verify(hs256(claims(), SECRET, kid="2026-10"), "ep-1", None, NOW)
    new = verifier.verify(hs256(claims(), NEW_SECRET, kid="2026-11"), "ep-1", None, NOW)
    assert (old.key_id, new.key_id) == ("2026-10", "2026-11")
    # The kid picks the key: the right secret under the wrong kid does not verify.
    assert refusal(verifier, hs256(claims(), NEW_SECRET, kid="2026-10")).code == "bad_signature"


def test_a_new_kid_reloads_the_keys_at_most_once_per_interval() -> None:
    clock = FakeClock()
    stored: dict[str, bytes] = {"old": SECRET.encode()}
    loads: list[int] = []

    def loader() -> Mapping[str, bytes]:
        loads.append(1)
        return dict(stored)

    verifier = TokenVerifier(
        SigningSettings(hs256_keys={"old": SECRET.encode()}, keys_refresh_seconds=60),
        hs256_keys=loader,
        monotonic=clock,
    )
    assert verifier.verify(hs256(claims(), SECRET, kid="old"), "ep-1", None, NOW)
    assert len(loads) == 1
    # Random kids from an attacker: no reload within the interval of the last one...
    clock.now += 59
    for n in range(20):
        assert refusal(verifier, hs256(claims(), kid=f"random-{n}")).code == "unknown_key"
    assert len(loads) == 1
    # ...then one, and none again for another interval.
    clock.now += 1
    for n in range(20):
        assert refusal(verifier, hs256(claims(), kid=f"random-{n}")).code == "unknown_key"
    assert len(loads) == 2
    stored["new"] = NEW_SECRET.encode()
    assert refusal(verifier, hs256(claims(), NEW_SECRET, kid="new")).code == "unknown_key"
    clock.now += 60
    assert verifier.verify(hs256(claims(), NEW_SECRET, kid="new"), "ep-1", None, NOW)
    assert len(loads) == 3


def test_keys_are_reloaded_when_old_and_a_failed_reload_keeps_them() -> None:
    clock = FakeClock()
    answers: list[Mapping[str, bytes] | Exception] = [
        {"k1": SECRET.encode()},
        KeysUnavailableError("ssm down"),
        {"k2": NEW_SECRET.encode()},
    ]
    loads: list[int] = []

    def loader() -> Mapping[str, bytes]:
        loads.append(1)
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    verifier = TokenVerifier(
        SigningSettings(
            hs256_keys={"k1": SECRET.encode()}, keys_max_age_seconds=600, keys_refresh_seconds=60
        ),
        hs256_keys=loader,
        monotonic=clock,
    )
    assert verifier.verify(hs256(claims()), "ep-1", None, NOW)
    clock.now += 600
    assert verifier.verify(hs256(claims()), "ep-1", None, NOW)  # reload failed: old keys kept
    clock.now += 10
    assert verifier.verify(hs256(claims()), "ep-1", None, NOW)  # not retried within 60 s
    assert len(loads) == 2
    clock.now += 60
    assert refusal(verifier, hs256(claims())).code == "unknown_key"  # k1 was removed
    assert verifier.verify(hs256(claims(), NEW_SECRET, kid="k2"), "ep-1", None, NOW)
    assert len(loads) == 3


def test_no_keys_at_all_is_unavailable_not_a_refusal_and_retried_after_a_second() -> None:
    clock = FakeClock()
    loads: list[int] = []

    def loader() -> Mapping[str, bytes]:
        loads.append(1)
        raise KeysUnavailableError("TOKEN_HS256_KEYS_PARAMETER: ssm unreachable")

    verifier = TokenVerifier(
        SigningSettings(hs256_keys={"k1": SECRET.encode()}), hs256_keys=loader, monotonic=clock
    )
    for _ in range(5):
        with pytest.raises(KeysUnavailableError, match="ssm unreachable"):
            verifier.verify(hs256(claims()), "ep-1", None, NOW)
    assert len(loads) == 1
    clock.now += 1
    with pytest.raises(KeysUnavailableError):
        verifier.verify(hs256(claims()), "ep-1", None, NOW)
    assert len(loads) == 2


def test_injected_short_keys_are_unavailable_not_silently_weak() -> None:
    verifier = TokenVerifier(
        SigningSettings(hs256_keys={"k1": b"x" * 32}), hs256_keys=lambda: {"k1": b"short"}
    )
    with pytest.raises(KeysUnavailableError, match="shorter than 32 bytes"):
        verifier.verify(hs256(claims()), "ep-1", None, NOW)


# Settings ---------------------------------------------------------------------------------------


def test_defaults() -> None:
    settings = SigningSettings.from_env({})
    assert settings == SigningSettings()
    assert not settings.enabled
    assert (settings.parameter, settings.max_bytes, settings.leeway_seconds) == ("token", 2048, 60)


def test_every_setting_is_read() -> None:
    settings = SigningSettings.from_env(
        {
            "TOKEN_PARAMETER": "sig",
            "TOKEN_HS256_KEYS": json.dumps({"k1": SECRET}),
            "TOKEN_JWKS_URL": "https://cognito-idp.us-east-1.amazonaws.com/pool/.well-known/jwks.json",
            "TOKEN_ISSUER": ISSUER,
            "TOKEN_AUDIENCE": "client-id",
            "TOKEN_JWKS_TIMEOUT_SECONDS": "3",
            "TOKEN_LEEWAY_SECONDS": "30",
            "TOKEN_MAX_BYTES": "4096",
            "TOKEN_MAX_LIFETIME_SECONDS": "3600",
            "TOKEN_KEYS_MAX_AGE_SECONDS": "300",
            "TOKEN_KEYS_REFRESH_SECONDS": "30",
            "REQUIRE_SIGNED_HITS": "true",
            "SIGNED_USER_ATTRIBUTES": "tier, plan",
            "SIGNED_ENDPOINT_ATTRIBUTES": "lang",
            "SIGNED_ENDPOINT_METRICS": "visits",
        }
    )
    assert settings.parameter == "sig"
    assert settings.hs256_keys == {"k1": SECRET.encode()}
    assert (settings.issuer, settings.audience) == (ISSUER, "client-id")
    assert (settings.jwks_timeout_seconds, settings.leeway_seconds, settings.max_bytes) == (
        3,
        30,
        4096,
    )
    assert (
        settings.max_lifetime_seconds,
        settings.keys_max_age_seconds,
        settings.keys_refresh_seconds,
    ) == (3600, 300, 30)
    assert settings.require_signed_hits
    assert settings.signed_user_attributes == {"tier", "plan"}
    assert settings.signed_endpoint_attributes == {"lang"}
    assert settings.signed_endpoint_metrics == {"visits"}
    assert SECRET not in repr(settings)


@pytest.mark.parametrize(
    ("value", "kind", "name"),
    [
        ("/pixel-relay/prod/keys", "ssm", "/pixel-relay/prod/keys"),
        ("ssm:pixel-relay-keys", "ssm", "pixel-relay-keys"),
        ("secretsmanager:pixel-relay/prod/keys", "secretsmanager", "pixel-relay/prod/keys"),
        (
            "arn:aws:ssm:eu-west-1:123456789012:parameter/pixel-relay/keys",
            "ssm",
            "arn:aws:ssm:eu-west-1:123456789012:parameter/pixel-relay/keys",
        ),
        (
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pixel-relay-AbCdEf",
            "secretsmanager",
            "arn:aws:secretsmanager:eu-west-1:123456789012:secret:pixel-relay-AbCdEf",
        ),
    ],
)
def test_key_source_forms(value: str, kind: str, name: str) -> None:
    source = SigningSettings.from_env({"TOKEN_HS256_KEYS_PARAMETER": value}).hs256_keys_source
    assert source == KeySource(kind, name)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"TOKEN_PARAMETER": "to ken"}, "TOKEN_PARAMETER"),
        ({"TOKEN_PARAMETER": "endpoint_id"}, "TOKEN_PARAMETER"),
        ({"TOKEN_PARAMETER": "evat_token"}, "TOKEN_PARAMETER"),
        ({"TOKEN_HS256_KEYS_PARAMETER": "has space"}, "TOKEN_HS256_KEYS_PARAMETER"),
        ({"TOKEN_HS256_KEYS_PARAMETER": "secretsmanager:a b"}, "TOKEN_HS256_KEYS_PARAMETER"),
        ({"TOKEN_HS256_KEYS": "not json"}, "TOKEN_HS256_KEYS"),
        ({"TOKEN_HS256_KEYS": "{}"}, "TOKEN_HS256_KEYS"),
        ({"TOKEN_HS256_KEYS": '["a"]'}, "TOKEN_HS256_KEYS"),
        ({"TOKEN_HS256_KEYS": '{"k1": "short"}'}, "TOKEN_HS256_KEYS"),
        ({"TOKEN_HS256_KEYS": '{"k1": 12345}'}, "TOKEN_HS256_KEYS"),
        ({"TOKEN_HS256_KEYS": json.dumps({"": SECRET})}, "TOKEN_HS256_KEYS"),
        (
            {"TOKEN_HS256_KEYS": json.dumps({"k1": "-----BEGIN PUBLIC KEY-----" + "A" * 40})},
            "TOKEN_HS256_KEYS",
        ),
        (
            {"TOKEN_HS256_KEYS": json.dumps({"k1": SECRET}), "TOKEN_HS256_KEYS_PARAMETER": "/a"},
            "TOKEN_HS256_KEYS",
        ),
        (
            {"TOKEN_JWKS_URL": "http://idp.example/jwks.json", "TOKEN_ISSUER": ISSUER},
            "TOKEN_JWKS_URL",
        ),
        ({"TOKEN_JWKS_URL": "https:///jwks.json", "TOKEN_ISSUER": ISSUER}, "TOKEN_JWKS_URL"),
        ({"TOKEN_JWKS_URL": "https://idp.example/jwks.json"}, "TOKEN_ISSUER"),
        ({"TOKEN_ISSUER": ISSUER}, "TOKEN_ISSUER"),
        ({"TOKEN_AUDIENCE": "x"}, "TOKEN_AUDIENCE"),
        ({"TOKEN_LEEWAY_SECONDS": "-1"}, "TOKEN_LEEWAY_SECONDS"),
        ({"TOKEN_LEEWAY_SECONDS": "soon"}, "TOKEN_LEEWAY_SECONDS"),
        ({"TOKEN_MAX_BYTES": "100000"}, "TOKEN_MAX_BYTES"),
        ({"TOKEN_JWKS_TIMEOUT_SECONDS": "0"}, "TOKEN_JWKS_TIMEOUT_SECONDS"),
        ({"TOKEN_MAX_LIFETIME_SECONDS": "10"}, "TOKEN_MAX_LIFETIME_SECONDS"),
        ({"TOKEN_KEYS_REFRESH_SECONDS": "0"}, "TOKEN_KEYS_REFRESH_SECONDS"),
        ({"TOKEN_KEYS_MAX_AGE_SECONDS": "1"}, "TOKEN_KEYS_MAX_AGE_SECONDS"),
        ({"REQUIRE_SIGNED_HITS": "maybe"}, "REQUIRE_SIGNED_HITS"),
        ({"REQUIRE_SIGNED_HITS": "true"}, "REQUIRE_SIGNED_HITS"),
        ({"SIGNED_USER_ATTRIBUTES": "tier"}, "SIGNED_USER_ATTRIBUTES"),
        ({"SIGNED_ENDPOINT_ATTRIBUTES": "lang"}, "SIGNED_ENDPOINT_ATTRIBUTES"),
        ({"SIGNED_ENDPOINT_METRICS": "visits"}, "SIGNED_ENDPOINT_METRICS"),
        (
            {"TOKEN_HS256_KEYS": json.dumps({"k1": SECRET}), "SIGNED_USER_ATTRIBUTES": "a" * 51},
            "SIGNED_USER_ATTRIBUTES",
        ),
    ],
)
def test_bad_settings_name_the_variable(environ: dict[str, str], variable: str) -> None:
    with pytest.raises(ConfigError) as caught:
        SigningSettings.from_env(environ)
    assert caught.value.variable == variable
    assert str(caught.value).startswith(f"{variable}: ")
    assert SECRET not in str(caught.value)


def test_an_audience_may_be_set_with_hs256_keys_alone() -> None:
    settings = SigningSettings.from_env(
        {"TOKEN_HS256_KEYS": json.dumps({"k1": SECRET}), "TOKEN_AUDIENCE": "shop-prod"}
    )
    assert settings.audience == "shop-prod"


def test_an_audience_without_any_key_names_what_is_missing() -> None:
    with pytest.raises(ConfigError) as caught:
        SigningSettings.from_env({"TOKEN_AUDIENCE": "shop-prod"})
    assert str(caught.value) == (
        "TOKEN_AUDIENCE: needs a key: set TOKEN_HS256_KEYS_PARAMETER or TOKEN_JWKS_URL"
    )


def test_loopback_jwks_url_may_be_plain_http_for_tests() -> None:
    settings = SigningSettings.from_env(
        {"TOKEN_JWKS_URL": "http://127.0.0.1:8000/jwks", "TOKEN_ISSUER": ISSUER}
    )
    assert settings.enabled


def test_signed_policy_adds_the_signed_allowlists_and_user_id() -> None:
    anonymous = HitPolicy(allowed_user_attributes=frozenset({"lang"}))
    signing = SigningSettings(
        hs256_keys={"k1": SECRET.encode()},
        signed_user_attributes=frozenset({"tier"}),
        signed_endpoint_attributes=frozenset({"plan"}),
        signed_endpoint_metrics=frozenset({"visits"}),
    )
    policy = signed_policy(anonymous, signing)
    assert policy.allowed_user_attributes == {"lang", "tier"}
    assert policy.allowed_endpoint_attributes == {"plan"}
    assert policy.allowed_endpoint_metrics == {"visits"}
    assert policy.allow_anonymous_user_id
    assert not anonymous.allow_anonymous_user_id
