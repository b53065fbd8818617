"""Signed hits: a JSON Web Token in the query string that binds a hit to one endpoint id.

- `settings`: the TOKEN_* variables (SigningSettings), parsed for every stage;
- `keys`: where HS256 keys are read (SSM, Secrets Manager) and when they are read again;
- `jwks`: RS256/ES256 keys from a JWKS URL;
- `verify`: TokenVerifier, the signature and the claims against the hit;
- `exceptions`: what the pixel catches.

Every name is importable from here, but each module loads on first use of one of its
names: a stage without signed hits loads `settings` and `exceptions` only (cold start).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from chalicelib.signing.exceptions import KeysUnavailableError, TokenRefusedError
    from chalicelib.signing.jwks import JWKS_MAX_BYTES, MIN_RSA_BITS, JwksKeys, jwks_keys
    from chalicelib.signing.keys import KeyRing, ParameterKeys
    from chalicelib.signing.settings import (
        MIN_HS256_KEY_BYTES,
        KeySource,
        SigningSettings,
        parse_hs256_keys,
        signed_policy,
    )
    from chalicelib.signing.verify import (
        ENDPOINT_CLAIM,
        HS256,
        USER_CLAIM,
        SignedIdentity,
        TokenVerifier,
    )

_HOMES = {
    "exceptions": ("KeysUnavailableError", "TokenRefusedError"),
    "jwks": ("JWKS_MAX_BYTES", "MIN_RSA_BITS", "JwksKeys", "jwks_keys"),
    "keys": ("KeyRing", "ParameterKeys"),
    "settings": (
        "MIN_HS256_KEY_BYTES",
        "KeySource",
        "SigningSettings",
        "parse_hs256_keys",
        "signed_policy",
    ),
    "verify": ("ENDPOINT_CLAIM", "HS256", "USER_CLAIM", "SignedIdentity", "TokenVerifier"),
}
_MODULE_OF = {name: module for module, names in _HOMES.items() for name in names}

__all__ = [
    "ENDPOINT_CLAIM",
    "HS256",
    "JWKS_MAX_BYTES",
    "MIN_HS256_KEY_BYTES",
    "MIN_RSA_BITS",
    "USER_CLAIM",
    "JwksKeys",
    "KeyRing",
    "KeySource",
    "KeysUnavailableError",
    "ParameterKeys",
    "SignedIdentity",
    "SigningSettings",
    "TokenRefusedError",
    "TokenVerifier",
    "jwks_keys",
    "parse_hs256_keys",
    "signed_policy",
]


def __getattr__(name: str) -> Any:
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
