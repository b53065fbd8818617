"""Signed-hit tokens and keys for the tests: the claims, secrets and helpers that the unit tests
(tests/unit/signing/test_signing.py), the key-source tests over loopback
(tests/integration/test_signing_keys.py) and the signed hits of the pipeline tests
(`live_token`) build tokens from."""

from __future__ import annotations

import base64
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.asymmetric.ec import EllipticCurvePrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

from chalicelib.signing.exceptions import TokenRefusedError
from chalicelib.signing.verify import TokenVerifier

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
EXP = int((NOW + timedelta(hours=1)).timestamp())
SECRET = "s3cr3t-for-tests-only-0123456789abcdef"
NEW_SECRET = "rotated-secret-for-tests-0123456789abcdef"
ISSUER = "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_Example"


def claims(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {"eid": "ep-1", "sub": "user-1", "exp": EXP}
    base.update(overrides)
    return {k: v for k, v in base.items() if v is not None}


def hs256(payload: Mapping[str, Any], secret: str = SECRET, kid: str | None = "k1") -> str:
    headers = {} if kid is None else {"kid": kid}
    return jwt.encode(dict(payload), secret, algorithm="HS256", headers=headers)


def live_token(endpoint_id: str, user_id: str | None = None, lifetime: int = 300) -> str:
    """A token for a hit sent now, to the app over the pipeline: its `exp` is read from the
    real clock, as the pixel reads it (HS256 with SECRET, key id k1)."""
    return hs256(claims(eid=endpoint_id, sub=user_id, exp=int(time.time()) + lifetime))


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def refusal(
    verifier: TokenVerifier, token: str, endpoint: str = "ep-1", user: str | None = None
) -> TokenRefusedError:
    with pytest.raises(TokenRefusedError) as caught:
        verifier.verify(token, endpoint, user, NOW)
    return caught.value


@dataclass
class AsymmetricKeys:
    rsa: RSAPrivateKey
    ec: EllipticCurvePrivateKey
    weak_rsa: RSAPrivateKey

    def jwks(self, *extra: dict[str, Any]) -> dict[str, Any]:
        rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(self.rsa.public_key(), as_dict=True)
        ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(self.ec.public_key(), as_dict=True)
        return {
            "keys": [
                {**rsa_jwk, "kid": "rsa-1", "use": "sig", "alg": "RS256"},
                {**ec_jwk, "kid": "ec-1", "use": "sig"},
                *extra,
            ]
        }

    def rsa_public_pem(self) -> bytes:
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def asymmetric_keys() -> AsymmetricKeys:
    """Fresh keys; slow (RSA), so each test module makes them once in a module fixture."""
    return AsymmetricKeys(
        rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
        ec=ec.generate_private_key(ec.SECP256R1()),
        weak_rsa=rsa.generate_private_key(public_exponent=65537, key_size=1024),
    )


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now
