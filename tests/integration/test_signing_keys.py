"""Signed hits' key sources over loopback: a JWKS URL served by pytest-httpserver (fetched
once, refetched for an unknown kid at most once per interval, given up on after the timeout)
and keys stored in SSM Parameter Store or Secrets Manager (moto's server)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import boto3
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from chalicelib import runtime
from chalicelib.signing.exceptions import KeysUnavailableError
from chalicelib.signing.jwks import CappedJWKClient
from chalicelib.signing.settings import KeySource, SigningSettings
from chalicelib.signing.verify import TokenVerifier
from tests.integration.harness import Pipeline
from tests.tokens import (
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

# Keys and a JWKS server -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def keys() -> AsymmetricKeys:
    return asymmetric_keys()


@dataclass
class JwksServer:
    """What the JWKS handler serves (a test may change it), and how often it was asked."""

    url: str
    document: dict[str, Any]
    requests: int = 0
    delay: float = 0.0
    status: int = 200
    lock: threading.Lock = field(default_factory=threading.Lock)
    released: threading.Event = field(default_factory=threading.Event)

    def answer(self, request: Request) -> Response:
        with self.lock:
            self.requests += 1
        # A slow server for the timeout test; let go at teardown, so the next test's
        # requests do not queue behind it (pytest-httpserver answers one at a time).
        self.released.wait(self.delay)
        return Response(
            json.dumps(self.document), status=self.status, content_type="application/json"
        )


@pytest.fixture
def jwks_server(keys: AsymmetricKeys, httpserver: HTTPServer) -> Iterator[JwksServer]:
    path = "/.well-known/jwks.json"
    state = JwksServer(url=httpserver.url_for(path), document=keys.jwks())
    httpserver.expect_request(path, method="GET").respond_with_handler(state.answer)
    yield state
    state.released.set()
    httpserver.check_handler_errors()


def jwks_verifier(
    url: str, clock: Callable[[], float] = time.monotonic, **options: Any
) -> TokenVerifier:
    return TokenVerifier(SigningSettings(jwks_url=url, issuer=ISSUER, **options), monotonic=clock)


# JWKS (RS256 / ES256) ---------------------------------------------------------------------------


def test_hs256_signed_with_the_rsa_public_key_is_refused(
    keys: AsymmetricKeys, jwks_server: JwksServer
) -> None:
    """The classic confusion: the attacker HMACs with the public key the server publishes."""
    header = {"alg": "HS256", "kid": "rsa-1", "typ": "JWT"}
    unsigned = f"{b64(json.dumps(header).encode())}.{b64(json.dumps(claims(iss=ISSUER)).encode())}"
    signature = hmac.new(keys.rsa_public_pem(), unsigned.encode(), hashlib.sha256).digest()
    error = refusal(jwks_verifier(jwks_server.url), f"{unsigned}.{b64(signature)}")
    assert (error.code, str(error)) == (
        "bad_algorithm",
        "algorithm is not allowed; its key takes RS256 only",
    )


def test_embedded_jwk_and_jku_headers_are_ignored(
    keys: AsymmetricKeys, jwks_server: JwksServer
) -> None:
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    embedded = jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    token = jwt.encode(
        claims(iss=ISSUER),
        attacker,
        algorithm="RS256",
        headers={"kid": "rsa-1", "jwk": embedded, "jku": "https://attacker.example/jwks"},
    )
    assert refusal(jwks_verifier(jwks_server.url), token).code == "bad_signature"


def test_rs256_and_es256_tokens_verify_against_a_jwks_fetched_once(
    keys: AsymmetricKeys, jwks_server: JwksServer
) -> None:
    verifier = jwks_verifier(jwks_server.url)
    for _ in range(3):
        rs = jwt.encode(claims(iss=ISSUER), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
        es = jwt.encode(claims(iss=ISSUER), keys.ec, algorithm="ES256", headers={"kid": "ec-1"})
        assert verifier.verify(rs, "ep-1", "user-1", NOW).key_id == "rsa-1"
        assert verifier.verify(es, "ep-1", "user-1", NOW).key_id == "ec-1"
    assert jwks_server.requests == 1


def test_es256_key_refuses_rs256_and_es384(keys: AsymmetricKeys, jwks_server: JwksServer) -> None:
    verifier = jwks_verifier(jwks_server.url)
    rs = jwt.encode(claims(iss=ISSUER), keys.rsa, algorithm="RS256", headers={"kid": "ec-1"})
    assert refusal(verifier, rs).code == "bad_algorithm"
    ps = jwt.encode(claims(iss=ISSUER), keys.rsa, algorithm="PS256", headers={"kid": "rsa-1"})
    assert refusal(verifier, ps).code == "bad_algorithm"


def test_unknown_kid_refetches_the_jwks_at_most_once_per_interval(
    keys: AsymmetricKeys, jwks_server: JwksServer
) -> None:
    clock = FakeClock()
    verifier = jwks_verifier(jwks_server.url, clock, keys_refresh_seconds=60)
    rotated = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    token = jwt.encode(claims(iss=ISSUER), rotated, algorithm="RS256", headers={"kid": "rsa-2"})
    for _ in range(10):
        assert refusal(verifier, token).code == "unknown_key"
    assert jwks_server.requests == 1  # fetched once; just fetched, so not again yet
    clock.now += 60
    assert refusal(verifier, token).code == "unknown_key"
    assert jwks_server.requests == 2  # one refetch for the unknown kid
    rotated_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(rotated.public_key(), as_dict=True)
    jwks_server.document = keys.jwks({**rotated_jwk, "kid": "rsa-2"})
    clock.now += 60
    assert verifier.verify(token, "ep-1", None, NOW).key_id == "rsa-2"
    assert jwks_server.requests == 3


def test_jwks_fetch_has_a_timeout(jwks_server: JwksServer) -> None:
    jwks_server.delay = 5.0
    started = time.monotonic()
    with pytest.raises(KeysUnavailableError, match=r"fetch failed \(TimeoutError\)"):
        CappedJWKClient(jwks_server.url, timeout=0.2).fetch_data()
    assert time.monotonic() - started < 4  # gave up long before the server answered


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirecting_jwks_url_is_unavailable_and_its_target_never_trusted(
    keys: AsymmetricKeys,
    jwks_server: JwksServer,
    httpserver: HTTPServer,
    pipeline: Pipeline,
    monkeypatch: pytest.MonkeyPatch,
    status: int,
) -> None:
    """A JWKS URL that redirects (its host taken over, a misconfigured CDN) must not hand
    trust to wherever it points: a token signed with the other set's key, for another
    endpoint and user with a signed-only attribute, is not recorded (503), nothing queued."""
    attacker = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    attacker_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(attacker.public_key(), as_dict=True)
    httpserver.expect_request("/attacker/jwks.json").respond_with_json(
        {"keys": [{**attacker_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"}]}
    )
    httpserver.expect_request("/redirecting/jwks.json").respond_with_response(
        Response(status=status, headers={"Location": httpserver.url_for("/attacker/jwks.json")})
    )
    url = httpserver.url_for("/redirecting/jwks.json")
    with pytest.raises(KeysUnavailableError, match=rf"answered HTTP {status}, a redirect"):
        CappedJWKClient(url).fetch_data()

    monkeypatch.setenv("TOKEN_JWKS_URL", url)
    monkeypatch.setenv("TOKEN_ISSUER", ISSUER)
    monkeypatch.setenv("SIGNED_USER_ATTRIBUTES", "tier")
    runtime.reset()
    forged = jwt.encode(
        {"eid": "ep-victim", "sub": "u-victim", "iss": ISSUER, "exp": int(time.time()) + 300},
        attacker,
        algorithm="RS256",
        headers={"kid": "rsa-1"},
    )
    answer = pipeline.hit(
        f"event=purchase&endpoint_id=ep-victim&user_id=u-victim&usat_tier=gold&token={forged}"
    )
    assert answer.status == 503
    assert pipeline.queued() == 0
    assert not any(request.path == "/attacker/jwks.json" for request, _ in httpserver.log), (
        "the redirect was followed"
    )

    # The configured URL itself still works, over plain http on loopback.
    monkeypatch.setenv("TOKEN_JWKS_URL", jwks_server.url)
    runtime.reset()
    genuine = jwt.encode(
        {"eid": "ep-1", "iss": ISSUER, "exp": int(time.time()) + 300},
        keys.rsa,
        algorithm="RS256",
        headers={"kid": "rsa-1"},
    )
    assert pipeline.hit(f"event=purchase&endpoint_id=ep-1&token={genuine}").status == 200
    assert pipeline.queued() == 1


def test_jwks_server_error_is_unavailable(jwks_server: JwksServer) -> None:
    jwks_server.status = 500
    verifier = jwks_verifier(jwks_server.url)
    with pytest.raises(KeysUnavailableError, match=r"TOKEN_JWKS_URL: answered HTTP 500"):
        verifier.verify(hs256(claims(), kid="rsa-1"), "ep-1", None, NOW)


def test_unusable_jwks_keys_are_skipped(keys: AsymmetricKeys, jwks_server: JwksServer) -> None:
    weak = jwt.algorithms.RSAAlgorithm.to_jwk(keys.weak_rsa.public_key(), as_dict=True)
    private = jwt.algorithms.RSAAlgorithm.to_jwk(keys.rsa, as_dict=True)
    public = jwt.algorithms.RSAAlgorithm.to_jwk(keys.rsa.public_key(), as_dict=True)
    jwks_server.document = {
        "keys": [
            {**weak, "kid": "weak"},
            {**private, "kid": "private"},
            {**public, "kid": "enc", "use": "enc"},
            {**public, "kid": "wrong-alg", "alg": "HS256"},
            {"kty": "oct", "k": b64(SECRET.encode()), "kid": "oct"},
            {**public, "kid": "ok"},
        ]
    }
    verifier = jwks_verifier(jwks_server.url)
    with pytest.warns(jwt.InsecureKeyLengthWarning):
        weak_token = jwt.encode(
            claims(iss=ISSUER), keys.weak_rsa, algorithm="RS256", headers={"kid": "weak"}
        )
    assert refusal(verifier, weak_token).code == "unknown_key"
    for kid in ("private", "enc", "wrong-alg"):
        token = jwt.encode(claims(iss=ISSUER), keys.rsa, algorithm="RS256", headers={"kid": kid})
        assert refusal(verifier, token).code == "unknown_key", kid
    oct_token = jwt.encode(claims(iss=ISSUER), SECRET, algorithm="HS256", headers={"kid": "oct"})
    assert refusal(verifier, oct_token).code == "unknown_key"
    token = jwt.encode(claims(iss=ISSUER), keys.rsa, algorithm="RS256", headers={"kid": "ok"})
    assert verifier.verify(token, "ep-1", None, NOW).key_id == "ok"


def test_jwks_without_usable_keys_is_unavailable(jwks_server: JwksServer) -> None:
    jwks_server.document = {"keys": [{"kty": "oct", "k": "AAAA", "kid": "x"}]}
    with pytest.raises(KeysUnavailableError, match="no RS256 or ES256 signing key"):
        jwks_verifier(jwks_server.url).verify(hs256(claims(), kid="x"), "ep-1", None, NOW)


def test_issuer_is_checked_for_jwks_tokens(keys: AsymmetricKeys, jwks_server: JwksServer) -> None:
    verifier = jwks_verifier(jwks_server.url)
    other = jwt.encode(
        claims(iss="https://evil.example"), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    assert refusal(verifier, other).code == "wrong_issuer"
    missing = jwt.encode(claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    error = refusal(verifier, missing)
    assert (error.code, str(error)) == ("missing_claim", "lacks the iss claim")


def test_audience_is_checked_when_configured(keys: AsymmetricKeys, jwks_server: JwksServer) -> None:
    verifier = jwks_verifier(jwks_server.url, audience="pixel-relay")
    good = jwt.encode(
        claims(iss=ISSUER, aud="pixel-relay"), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    assert verifier.verify(good, "ep-1", None, NOW)
    bad = jwt.encode(
        claims(iss=ISSUER, aud="another-app"), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"}
    )
    assert refusal(verifier, bad).code == "wrong_audience"


def test_hs256_and_jwks_keys_side_by_side(keys: AsymmetricKeys, jwks_server: JwksServer) -> None:
    verifier = TokenVerifier(
        SigningSettings(hs256_keys={"k1": SECRET.encode()}, jwks_url=jwks_server.url, issuer=ISSUER)
    )
    assert verifier.verify(hs256(claims()), "ep-1", None, NOW).key_id == "k1"
    rs = jwt.encode(claims(iss=ISSUER), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    assert verifier.verify(rs, "ep-1", None, NOW).key_id == "rsa-1"


def test_one_key_source_down_does_not_stop_tokens_from_the_other(
    keys: AsymmetricKeys, jwks_server: JwksServer
) -> None:
    def ssm_down() -> Mapping[str, bytes]:
        raise KeysUnavailableError("TOKEN_HS256_KEYS_PARAMETER: ssm unreachable")

    verifier = TokenVerifier(
        SigningSettings(
            hs256_keys={"k1": SECRET.encode()}, jwks_url=jwks_server.url, issuer=ISSUER
        ),
        hs256_keys=ssm_down,
    )
    rs = jwt.encode(claims(iss=ISSUER), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    assert verifier.verify(rs, "ep-1", None, NOW).key_id == "rsa-1"
    with pytest.raises(KeysUnavailableError, match="ssm unreachable"):
        verifier.verify(hs256(claims()), "ep-1", None, NOW)


# SSM Parameter Store and Secrets Manager (moto's server) ----------------------------------------


def test_keys_from_an_ssm_secure_string(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"/pixel-relay/test/keys-{time.time_ns()}"
    ssm = boto3.client("ssm", endpoint_url=moto_url)
    ssm.put_parameter(Name=name, Value=json.dumps({"k1": SECRET}), Type="SecureString")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    settings = SigningSettings.from_env({"TOKEN_HS256_KEYS_PARAMETER": name})
    assert settings.hs256_keys_source == KeySource("ssm", name)
    assert TokenVerifier(settings).verify(hs256(claims()), "ep-1", None, NOW).key_id == "k1"


def test_keys_from_a_secrets_manager_secret(moto_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    name = f"pixel-relay/test/keys-{time.time_ns()}"
    secrets = boto3.client("secretsmanager", endpoint_url=moto_url)
    secrets.create_secret(Name=name, SecretString=json.dumps({"k1": SECRET, "k2": NEW_SECRET}))
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", moto_url)
    settings = SigningSettings.from_env({"TOKEN_HS256_KEYS_PARAMETER": f"secretsmanager:{name}"})
    verifier = TokenVerifier(settings)
    assert verifier.verify(hs256(claims(), NEW_SECRET, kid="k2"), "ep-1", None, NOW).key_id == "k2"


def test_missing_parameter_is_unavailable_with_the_reason(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    verifier = TokenVerifier(SigningSettings(hs256_keys_source=KeySource("ssm", "/does/not/exist")))
    with pytest.raises(KeysUnavailableError, match=r"ssm refused the read \(ParameterNotFound\)"):
        verifier.verify(hs256(claims()), "ep-1", None, NOW)


def test_a_stored_value_that_is_not_keys_never_shows_the_value(
    moto_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    name = f"/pixel-relay/test/bad-{time.time_ns()}"
    leaked = "do-not-show-this-value-anywhere-0123456789"
    boto3.client("ssm", endpoint_url=moto_url).put_parameter(
        Name=name, Value=leaked, Type="SecureString"
    )
    monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", moto_url)
    verifier = TokenVerifier(SigningSettings(hs256_keys_source=KeySource("ssm", name)))
    with pytest.raises(KeysUnavailableError) as caught:
        verifier.verify(hs256(claims()), "ep-1", None, NOW)
    assert "must be a JSON object" in str(caught.value)
    assert leaked not in str(caught.value)
