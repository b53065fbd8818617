"""The signed-hit settings: where the keys are, which claims are checked, what a signed hit
may write (docs/signed-hits.md describes each variable).

Loaded when any of those variables is set (config.Settings), so a wrong value fails at
start; it imports neither PyJWT nor an AWS client: `keys` and `verify` load only when a key
is configured.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Final, Literal
from urllib.parse import urlsplit

from chalicelib.env import ConfigError, Reader
from chalicelib.hits import PREFIXES, SINGLE_VALUED, TOKEN_PARAMETER, HitPolicy

__all__ = [
    "MIN_HS256_KEY_BYTES",
    "KeySource",
    "SigningSettings",
    "parse_hs256_keys",
    "signed_policy",
]

# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (256 bits).
MIN_HS256_KEY_BYTES: Final = 32

KID = re.compile(r"[\x21-\x7e]{1,128}")
_TOKEN_PARAMETER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SSM_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,2048}")
_SECRET_ID = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_ARN = re.compile(r"arn:aws[a-z-]*:(ssm|secretsmanager):[a-z0-9-]+:[0-9]{12}:\S+")


@dataclass(frozen=True)
class KeySource:
    """Where the HS256 keys live: an SSM parameter or a Secrets Manager secret."""

    kind: Literal["ssm", "secretsmanager"]
    name: str

    @classmethod
    def parse(cls, variable: str, text: str) -> KeySource:
        """`ssm:NAME`, `secretsmanager:ID`, either service's ARN, or a bare SSM name."""
        arn = _ARN.fullmatch(text)
        if arn and len(text) > 2048:  # both services' model: Name/SecretId max 2048
            raise ConfigError(variable, "is longer than 2048 characters")
        if arn:
            return cls("ssm" if arn.group(1) == "ssm" else "secretsmanager", text)
        if text.startswith("secretsmanager:"):
            name = text.removeprefix("secretsmanager:")
            if not _SECRET_ID.fullmatch(name):
                raise ConfigError(variable, "is not a valid Secrets Manager secret id")
            return cls("secretsmanager", name)
        name = text.removeprefix("ssm:")
        if not _SSM_NAME.fullmatch(name):
            raise ConfigError(
                variable,
                "must be an SSM parameter name, ssm:NAME, secretsmanager:ID or an ARN",
            )
        return cls("ssm", name)


@dataclass(frozen=True)
class SigningSettings:
    """The signed-hit settings (docs/signed-hits.md describes each variable)."""

    parameter: str = TOKEN_PARAMETER
    hs256_keys_source: KeySource | None = None
    # Development only (TOKEN_HS256_KEYS); never shown in a repr that might be logged.
    hs256_keys: Mapping[str, bytes] = field(default_factory=dict, repr=False)
    jwks_url: str | None = None
    issuer: str | None = None
    audience: str | None = None
    jwks_timeout_seconds: float = 2.0
    leeway_seconds: int = 60
    max_bytes: int = 2048
    max_lifetime_seconds: int = 86_400
    keys_max_age_seconds: int = 600
    keys_refresh_seconds: int = 60
    require_signed_hits: bool = False
    signed_user_attributes: frozenset[str] = frozenset()
    signed_endpoint_attributes: frozenset[str] = frozenset()
    signed_endpoint_metrics: frozenset[str] = frozenset()

    @property
    def has_hs256_keys(self) -> bool:
        return self.hs256_keys_source is not None or bool(self.hs256_keys)

    @property
    def enabled(self) -> bool:
        """Whether any key is configured, so a token can be checked at all."""
        return self.has_hs256_keys or self.jwks_url is not None

    @classmethod
    def from_env(cls, environ: Mapping[str, str]) -> SigningSettings:
        reader = Reader(environ)
        source_text = environ.get("TOKEN_HS256_KEYS_PARAMETER", "").strip()
        keys_text = environ.get("TOKEN_HS256_KEYS", "").strip()
        if source_text and keys_text:
            raise ConfigError(
                "TOKEN_HS256_KEYS", "set TOKEN_HS256_KEYS or TOKEN_HS256_KEYS_PARAMETER, not both"
            )
        jwks_url, issuer = _jwks_settings(environ)
        settings = cls(
            parameter=_token_parameter(
                environ.get("TOKEN_PARAMETER", "").strip() or TOKEN_PARAMETER
            ),
            hs256_keys_source=(
                KeySource.parse("TOKEN_HS256_KEYS_PARAMETER", source_text) if source_text else None
            ),
            hs256_keys=parse_hs256_keys(keys_text, "TOKEN_HS256_KEYS") if keys_text else {},
            jwks_url=jwks_url,
            issuer=issuer,
            audience=environ.get("TOKEN_AUDIENCE", "").strip() or None,
            jwks_timeout_seconds=reader.integer(
                "TOKEN_JWKS_TIMEOUT_SECONDS", default=2, low=1, high=10
            ),
            leeway_seconds=reader.integer("TOKEN_LEEWAY_SECONDS", default=60, low=0, high=600),
            max_bytes=reader.integer("TOKEN_MAX_BYTES", default=2048, low=256, high=8192),
            max_lifetime_seconds=reader.integer(
                "TOKEN_MAX_LIFETIME_SECONDS", default=86_400, low=60, high=30 * 86_400
            ),
            keys_max_age_seconds=reader.integer(
                "TOKEN_KEYS_MAX_AGE_SECONDS", default=600, low=60, high=86_400
            ),
            keys_refresh_seconds=reader.integer(
                "TOKEN_KEYS_REFRESH_SECONDS", default=60, low=1, high=3600
            ),
            require_signed_hits=reader.boolean("REQUIRE_SIGNED_HITS", default=False),
            signed_user_attributes=reader.attribute_names("SIGNED_USER_ATTRIBUTES"),
            signed_endpoint_attributes=reader.attribute_names("SIGNED_ENDPOINT_ATTRIBUTES"),
            signed_endpoint_metrics=reader.attribute_names("SIGNED_ENDPOINT_METRICS"),
        )
        if not settings.enabled:
            for variable, value in (
                ("TOKEN_AUDIENCE", settings.audience),
                ("REQUIRE_SIGNED_HITS", settings.require_signed_hits),
                ("SIGNED_USER_ATTRIBUTES", settings.signed_user_attributes),
                ("SIGNED_ENDPOINT_ATTRIBUTES", settings.signed_endpoint_attributes),
                ("SIGNED_ENDPOINT_METRICS", settings.signed_endpoint_metrics),
            ):
                if value:
                    raise ConfigError(
                        variable,
                        "needs a key: set TOKEN_HS256_KEYS_PARAMETER or TOKEN_JWKS_URL",
                    )
        return settings


def signed_policy(policy: HitPolicy, settings: SigningSettings) -> HitPolicy:
    """The policy for a hit whose token verified: the anonymous allowlists plus the signed
    ones, and `user_id` allowed (verify() has checked it against the token's `sub`)."""
    return replace(
        policy,
        allowed_user_attributes=policy.allowed_user_attributes | settings.signed_user_attributes,
        allowed_endpoint_attributes=(
            policy.allowed_endpoint_attributes | settings.signed_endpoint_attributes
        ),
        allowed_endpoint_metrics=policy.allowed_endpoint_metrics | settings.signed_endpoint_metrics,
        allow_anonymous_user_id=True,
    )


def _token_parameter(name: str) -> str:
    if not _TOKEN_PARAMETER.fullmatch(name):
        raise ConfigError("TOKEN_PARAMETER", "must be letters, digits, _ and - (at most 64)")
    if name in SINGLE_VALUED or name.startswith(PREFIXES):
        raise ConfigError("TOKEN_PARAMETER", "is a name the pixel already reads")
    return name


def _jwks_settings(environ: Mapping[str, str]) -> tuple[str | None, str | None]:
    url = environ.get("TOKEN_JWKS_URL", "").strip() or None
    issuer = environ.get("TOKEN_ISSUER", "").strip() or None
    if url is None:
        if issuer:
            raise ConfigError("TOKEN_ISSUER", "is only used with TOKEN_JWKS_URL")
        return None, None
    parts = urlsplit(url)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        # Keys fetched over plain HTTP could be swapped by anyone on the path.
        raise ConfigError("TOKEN_JWKS_URL", "must be an https:// URL")
    if issuer is None:
        # A JWKS usually belongs to an issuer serving many applications: pin which one.
        raise ConfigError("TOKEN_ISSUER", "is required with TOKEN_JWKS_URL")
    return url, issuer


def parse_hs256_keys(text: str, origin: str) -> dict[str, bytes]:
    """`{"kid": "secret", ...}` → keys by kid; ConfigError naming `origin` if unusable.

    Secrets are the UTF-8 bytes of each string, as PyJWT and node:crypto use a string key.
    """
    try:
        document = json.loads(text)
    except ValueError:
        raise ConfigError(origin, 'must be a JSON object {"kid": "secret", ...}') from None
    if not isinstance(document, dict) or not document:
        raise ConfigError(origin, 'must be a non-empty JSON object {"kid": "secret", ...}')
    keys: dict[str, bytes] = {}
    for kid, secret in document.items():
        if not KID.fullmatch(kid):
            raise ConfigError(origin, "key ids must be 1-128 printable ASCII characters")
        if not isinstance(secret, str):
            raise ConfigError(origin, f"the secret of key {kid} must be a string")
        raw = secret.encode("utf-8", "surrogatepass")
        if len(raw) < MIN_HS256_KEY_BYTES:
            raise ConfigError(
                origin, f"the secret of key {kid} is shorter than {MIN_HS256_KEY_BYTES} bytes"
            )
        if raw.lstrip().startswith(b"-----") or raw.startswith(b"ssh-"):
            # PyJWT refuses PEM/SSH text as an HMAC key (the HS/RS confusion guard).
            raise ConfigError(origin, f"the secret of key {kid} looks like a public key")
        keys[kid] = raw
    return keys
