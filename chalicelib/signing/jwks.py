"""RS256/ES256 keys from a JWKS URL, through PyJWT's `PyJWKClient` and its cache.

On top of PyJWT: the document is capped at JWKS_MAX_BYTES (a JWKS is a few KB; the client
would read any size), a redirect is never followed (as PyJWT's own fetch: keys come from
the configured URL only), fetch errors become KeysUnavailableError naming the problem, and only
keys fit for one pinned algorithm are kept: RSA of at least MIN_RSA_BITS → RS256, EC P-256
→ ES256, public signing keys with a kid. Imported only when TOKEN_JWKS_URL is set (PyJWT
with cryptography costs ~80 ms to import).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from typing import Any, Final

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey

from chalicelib.signing.exceptions import KeysUnavailableError
from chalicelib.signing.settings import KID

__all__ = ["JWKS_MAX_BYTES", "MIN_RSA_BITS", "CappedJWKClient", "JwksKeys", "jwks_keys"]

MIN_RSA_BITS: Final = 2048
JWKS_MAX_BYTES: Final = 256 * 1024
_NO_KEYS: Final = "TOKEN_JWKS_URL: no RS256 or ES256 signing key in the JWKS"


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Every 3xx ends the fetch as an HTTPError: a key set found anywhere but the configured
    URL (a redirect from a taken-over host or path) would hand out the power to sign hits."""

    def redirect_request(self, *args: Any, **kwargs: Any) -> None:
        return None


class CappedJWKClient(jwt.PyJWKClient):
    """PyJWKClient whose fetch reads at most JWKS_MAX_BYTES, follows no redirect and names
    what went wrong."""

    def fetch_data(self) -> Any:
        request = urllib.request.Request(
            self.uri,
            headers={"Accept": "application/json", "User-Agent": "pixel-relay", **self.headers},
        )
        handlers: list[urllib.request.BaseHandler] = [_NoRedirects()]
        if self.ssl_context is not None:
            handlers.append(urllib.request.HTTPSHandler(context=self.ssl_context))
        try:
            with urllib.request.build_opener(*handlers).open(
                request, timeout=self.timeout
            ) as response:
                body = response.read(JWKS_MAX_BYTES + 1)
        except urllib.error.HTTPError as error:
            error.close()  # it holds the connection open
            if 300 <= error.code < 400:
                raise KeysUnavailableError(
                    f"TOKEN_JWKS_URL: answered HTTP {error.code}, a redirect, which is not"
                    " followed: set TOKEN_JWKS_URL to the key set's own URL"
                ) from None
            raise KeysUnavailableError(f"TOKEN_JWKS_URL: answered HTTP {error.code}") from None
        except (OSError, ValueError) as error:  # URLError, timeouts
            raise KeysUnavailableError(
                f"TOKEN_JWKS_URL: fetch failed ({type(error).__name__})"
            ) from None
        if len(body) > JWKS_MAX_BYTES:
            raise KeysUnavailableError(f"TOKEN_JWKS_URL: larger than {JWKS_MAX_BYTES} bytes")
        try:
            document = json.loads(body)
        except (ValueError, RecursionError):
            raise KeysUnavailableError("TOKEN_JWKS_URL: the answer is not JSON") from None
        if not isinstance(document, dict):
            raise KeysUnavailableError("TOKEN_JWKS_URL: the answer is not a JWKS object")
        if not isinstance(document.get("keys"), list):
            raise KeysUnavailableError("TOKEN_JWKS_URL: the document has no keys list")
        return document


class JwksKeys:
    """A key reader (see keys.KeyRing) over a JWKS URL; PyJWKClient caches the set for
    `max_age_seconds`, and `refresh` fetches it now."""

    def __init__(self, url: str, timeout_seconds: float, max_age_seconds: float) -> None:
        self.client = CappedJWKClient(
            url, cache_jwk_set=True, lifespan=max_age_seconds, timeout=timeout_seconds
        )
        self._set: object = None
        self._keys: Mapping[str, jwt.PyJWK] = {}

    def __call__(self, refresh: bool) -> Mapping[str, jwt.PyJWK]:
        try:
            jwk_set = self.client.get_jwk_set(refresh)
        except jwt.PyJWTError:  # PyJWKSetError: not one key PyJWT can use
            raise KeysUnavailableError(_NO_KEYS) from None
        if jwk_set is not self._set:  # a new fetch, not PyJWKClient's cache
            self._keys = _usable(jwk_set.keys)
            self._set = jwk_set
        return self._keys


def jwks_keys(document: Mapping[str, Any]) -> dict[str, jwt.PyJWK]:
    """The usable signing keys of a JWKS document by kid (for an injected JWKS loader)."""
    entries = document.get("keys")
    if not isinstance(entries, list):
        raise KeysUnavailableError("TOKEN_JWKS_URL: the document has no keys list")
    try:
        jwk_set = jwt.PyJWKSet.from_dict(dict(document))
    except jwt.PyJWTError:
        raise KeysUnavailableError(_NO_KEYS) from None
    return _usable(jwk_set.keys)


def _usable(keys: Iterable[jwt.PyJWK]) -> dict[str, jwt.PyJWK]:
    """Keys fit for exactly one algorithm: anything else (other types, curves or algorithms,
    encryption keys, private keys, keys without a kid, RSA under 2048 bits) is skipped."""
    usable: dict[str, jwt.PyJWK] = {}
    for key in keys:
        kid = key.key_id
        if not isinstance(kid, str) or not KID.fullmatch(kid):
            continue
        if key.public_key_use not in (None, "sig"):
            continue
        public = key.key
        if key.algorithm_name == "RS256" and isinstance(public, RSAPublicKey):
            if public.key_size < MIN_RSA_BITS:
                continue
        elif key.algorithm_name == "ES256" and isinstance(public, EllipticCurvePublicKey):
            if not isinstance(public.curve, SECP256R1):
                continue
        else:
            continue
        usable[kid] = key
    if not usable:
        raise KeysUnavailableError(_NO_KEYS)
    return usable
