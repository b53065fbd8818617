"""Signed hits: checking a hit's JSON Web Token against the endpoint (and user) it writes.

A pixel URL is public, so anyone can send events for any endpoint id. A token minted by the
site's backend for a logged-in visitor proves that a hit is about that visitor's own endpoint
(and user), so a signed hit may write what an anonymous one may not. PyJWT checks every
signature; this module chooses the key by `kid`, pins the algorithm to the key's type (HS256
for shared secrets, RS256/ES256 for JWKS keys: no `alg: none`, no HS/RS confusion) and checks
the claims against the hit. docs/signed-hits.md has the claims and the minting snippets.

PyJWT (with cryptography) costs ~80 ms to import, so it is imported on first use: unsigned
hits and the consumer never pay for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final

from chalicelib.signing.exceptions import KeysUnavailableError, TokenRefusedError
from chalicelib.signing.keys import Expiring, KeyRing, ParameterKeys, checked_hs256_keys
from chalicelib.signing.settings import SigningSettings

if TYPE_CHECKING:
    from jwt import PyJWK
    from jwt.types import Options

__all__ = ["ENDPOINT_CLAIM", "HS256", "USER_CLAIM", "SignedIdentity", "TokenVerifier"]

# The claim that names the endpoint; `sub` names the user (the standard subject claim).
ENDPOINT_CLAIM: Final = "eid"
USER_CLAIM: Final = "sub"
HS256: Final = "HS256"


@dataclass(frozen=True)
class SignedIdentity:
    """What a verified token vouches for."""

    endpoint_id: str
    user_id: str | None
    key_id: str | None
    expires_at: datetime


class TokenVerifier:
    """Checks a hit's token; one per container (it caches the keys).

    `hs256_keys` and `jwks` (a JWKS document) replace the configured sources (tests, other
    secret stores): each is called on a (re)load and must raise KeysUnavailableError when it
    cannot answer; keys.KeyRing decides when.
    """

    def __init__(
        self,
        settings: SigningSettings,
        *,
        hs256_keys: Callable[[], Mapping[str, bytes]] | None = None,
        jwks: Callable[[], Mapping[str, Any]] | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._settings = settings
        self._hs256 = _hs256_ring(settings, hs256_keys, monotonic)
        self._jwks = _jwks_ring(settings, jwks, monotonic)

    def verify(
        self, token: str, endpoint_id: str, user_id: str | None, now: datetime
    ) -> SignedIdentity:
        """The identity the token vouches for, if it authorizes a hit for `endpoint_id` (and
        `user_id`, when the hit names one) at `now` (timezone-aware); else TokenRefusedError.
        Raises KeysUnavailableError when no key source can answer."""
        import jwt  # ~80 ms with cryptography: paid by the first signed hit only

        if len(token) > self._settings.max_bytes:
            raise TokenRefusedError(
                "too_large", f"is longer than {self._settings.max_bytes} bytes (TOKEN_MAX_BYTES)"
            )
        if not token or not token.isascii():
            raise _malformed()
        try:
            header = jwt.get_unverified_header(token)
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise _malformed() from None
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise TokenRefusedError("unknown_key", "names no key id (kid)")
        key, algorithm = self._key(kid)
        payload = self._decode(token, key, algorithm)
        return self._identity(payload, kid, endpoint_id, user_id, now)

    def _key(self, kid: str) -> tuple[bytes | PyJWK, str]:
        """The key named `kid` and the one algorithm it may verify; one source being down
        does not stop tokens whose key is in the other."""
        unavailable: KeysUnavailableError | None = None
        try:
            secret = None if self._hs256 is None else self._hs256.find(kid)
        except KeysUnavailableError as error:
            secret, unavailable = None, error
        if secret is not None:
            return secret, HS256
        try:
            public = None if self._jwks is None else self._jwks.find(kid)
        except KeysUnavailableError as error:
            public, unavailable = None, error
        if public is not None:
            return public, public.algorithm_name
        if unavailable is not None:
            raise unavailable
        raise TokenRefusedError("unknown_key", "names a key id (kid) that is not configured")

    def _decode(self, token: str, key: bytes | PyJWK, algorithm: str) -> dict[str, Any]:
        """PyJWT checks the signature with `algorithm` only, then `iss` (JWKS keys: an issuer
        serves many applications) and `aud` (any key, when TOKEN_AUDIENCE is set: one key
        may mint for several sites) and presence."""
        import jwt

        asymmetric = algorithm != HS256
        settings = self._settings
        options: Options = {
            # Time claims are checked below against the hit's clock, not PyJWT's.
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": asymmetric,
            "verify_aud": settings.audience is not None,
            "require": ["exp", ENDPOINT_CLAIM],
            "enforce_minimum_key_length": True,
        }
        try:
            payload: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[algorithm],
                options=options,
                issuer=settings.issuer if asymmetric else None,
                audience=settings.audience,
            )
        except jwt.InvalidSignatureError:
            raise TokenRefusedError("bad_signature", "signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise TokenRefusedError(
                "bad_algorithm", f"algorithm is not allowed; its key takes {algorithm} only"
            ) from None
        except jwt.MissingRequiredClaimError as error:
            if error.claim == "aud":
                raise TokenRefusedError(
                    "missing_claim", "lacks the aud claim (TOKEN_AUDIENCE)"
                ) from None
            claim = error.claim if error.claim in {"exp", ENDPOINT_CLAIM, "iss"} else ""
            raise TokenRefusedError("missing_claim", f"lacks the {claim} claim") from None
        except jwt.InvalidIssuerError:
            raise TokenRefusedError("wrong_issuer", "comes from another issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenRefusedError(
                "wrong_audience", "was issued for another audience (TOKEN_AUDIENCE)"
            ) from None
        except (jwt.PyJWTError, ValueError, TypeError, RecursionError):
            raise _malformed() from None
        return payload

    def _identity(
        self,
        payload: Mapping[str, Any],
        kid: str,
        endpoint_id: str,
        user_id: str | None,
        now: datetime,
    ) -> SignedIdentity:
        leeway = self._settings.leeway_seconds
        instant = now.timestamp()
        expires = _numeric_date(payload, "exp")
        assert expires is not None  # required above
        if expires <= instant - leeway:
            raise TokenRefusedError("expired", "has expired")
        for claim in ("nbf", "iat"):
            start = _numeric_date(payload, claim)
            if start is not None and start > instant + leeway:
                raise TokenRefusedError("not_yet_valid", f"is not valid yet ({claim})")
        if expires > instant + self._settings.max_lifetime_seconds + leeway:
            raise TokenRefusedError(
                "too_long_lived", "expires too far ahead (TOKEN_MAX_LIFETIME_SECONDS)"
            )
        if payload.get(ENDPOINT_CLAIM) != endpoint_id:
            raise TokenRefusedError("wrong_endpoint", "was issued for another endpoint_id")
        subject = payload.get(USER_CLAIM)
        if not isinstance(subject, str) or not subject:
            subject = None
        if user_id is not None and subject != user_id:
            raise TokenRefusedError("wrong_user", "was not issued for this user_id")
        return SignedIdentity(
            endpoint_id=endpoint_id,
            user_id=subject,
            key_id=kid,
            expires_at=datetime.fromtimestamp(expires, UTC),
        )


def _hs256_ring(
    settings: SigningSettings,
    injected: Callable[[], Mapping[str, bytes]] | None,
    clock: Callable[[], float],
) -> KeyRing[bytes] | None:
    max_age, refresh = settings.keys_max_age_seconds, settings.keys_refresh_seconds
    if injected is not None:
        return KeyRing(Expiring(checked_hs256_keys(injected), max_age, clock), refresh, clock)
    if settings.hs256_keys_source is not None:
        return KeyRing(ParameterKeys(settings.hs256_keys_source, max_age), refresh, clock)
    if settings.hs256_keys:
        static = settings.hs256_keys
        return KeyRing(Expiring(lambda: static, max_age, clock), refresh, clock)
    return None


def _jwks_ring(
    settings: SigningSettings,
    injected: Callable[[], Mapping[str, Any]] | None,
    clock: Callable[[], float],
) -> KeyRing[PyJWK] | None:
    if injected is None and settings.jwks_url is None:
        return None
    from chalicelib.signing import jwks  # PyJWT and cryptography: only with a JWKS

    max_age, refresh = settings.keys_max_age_seconds, settings.keys_refresh_seconds
    if injected is not None:
        document = injected
        return KeyRing(Expiring(lambda: jwks.jwks_keys(document()), max_age, clock), refresh, clock)
    assert settings.jwks_url is not None
    reader = jwks.JwksKeys(settings.jwks_url, settings.jwks_timeout_seconds, max_age)
    return KeyRing(reader, refresh, clock)


def _numeric_date(payload: Mapping[str, Any], claim: str) -> float | None:
    """A NumericDate claim (seconds since the epoch), or None when absent."""
    value = payload.get(claim)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TokenRefusedError("malformed", f"{claim} is not a NumericDate")
    # Compared before any float conversion: an int such as 10**400 overflows a float
    # (math.isfinite raises), and a float is compared as it is (NaN fails both bounds).
    # Beyond what a datetime can hold; no real token gets near this.
    if not -62_135_596_800 < value < 253_402_300_799:
        raise TokenRefusedError("malformed", f"{claim} is out of range")
    return float(value)


def _malformed() -> TokenRefusedError:
    return TokenRefusedError("malformed", "is not a well-formed JSON Web Token")
