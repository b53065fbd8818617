"""Signed hits: a JSON Web Token in the query string that binds a hit to one endpoint id.

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

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar
from urllib.parse import urlsplit

from chalicelib.config import ConfigError, HitPolicy, Reader

if TYPE_CHECKING:
    from jwt import PyJWK
    from jwt.types import Options

# The claim that names the endpoint; `sub` names the user (the standard subject claim).
ENDPOINT_CLAIM: Final = "eid"
USER_CLAIM: Final = "sub"
HS256: Final = "HS256"
# RFC 7518 section 3.2: an HS256 key must be at least as long as the hash (256 bits).
MIN_HS256_KEY_BYTES: Final = 32
MIN_RSA_BITS: Final = 2048
JWKS_MAX_BYTES: Final = 256 * 1024
# With no keys at all, a failing source is asked again at most this often.
_RETRY_WITHOUT_KEYS_SECONDS: Final = 1.0

_KID = re.compile(r"[\x21-\x7e]{1,128}")
_TOKEN_PARAMETER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_SSM_NAME = re.compile(r"[A-Za-z0-9_.\-/]{1,2048}")
_SECRET_ID = re.compile(r"[A-Za-z0-9/_+=.@-]{1,512}")
_ARN = re.compile(r"arn:aws[a-z-]*:(ssm|secretsmanager):[a-z0-9-]+:[0-9]{12}:\S+")

logger = logging.getLogger(__name__)


class TokenRefusedError(ValueError):
    """A token that does not authorize this hit.

    `code` is a short slug for metrics; str() is safe to show a browser: it never holds a
    secret, the token or a claim value.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class KeysUnavailableError(RuntimeError):
    """No keys could be loaded (SSM, Secrets Manager or the JWKS URL failed or holds junk).

    Not the client's fault: answer 503 as for a queue outage. The message names the source and
    the problem, never a key.
    """


@dataclass(frozen=True)
class SignedIdentity:
    """What a verified token vouches for."""

    endpoint_id: str
    user_id: str | None
    key_id: str | None
    expires_at: datetime


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

    parameter: str = "token"
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
        jwks_url, issuer, audience = _jwks_settings(environ)
        settings = cls(
            parameter=_token_parameter(environ.get("TOKEN_PARAMETER", "").strip() or "token"),
            hs256_keys_source=(
                KeySource.parse("TOKEN_HS256_KEYS_PARAMETER", source_text) if source_text else None
            ),
            hs256_keys=parse_hs256_keys(keys_text, "TOKEN_HS256_KEYS") if keys_text else {},
            jwks_url=jwks_url,
            issuer=issuer,
            audience=audience,
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
    # Imported here: hits may come to import this module.
    from chalicelib.hits import PREFIXES, SINGLE_VALUED

    if not _TOKEN_PARAMETER.fullmatch(name):
        raise ConfigError("TOKEN_PARAMETER", "must be letters, digits, _ and - (at most 64)")
    if name in SINGLE_VALUED or name.startswith(PREFIXES):
        raise ConfigError("TOKEN_PARAMETER", "is a name the pixel already reads")
    return name


def _jwks_settings(environ: Mapping[str, str]) -> tuple[str | None, str | None, str | None]:
    url = environ.get("TOKEN_JWKS_URL", "").strip() or None
    issuer = environ.get("TOKEN_ISSUER", "").strip() or None
    audience = environ.get("TOKEN_AUDIENCE", "").strip() or None
    if url is None:
        for variable, value in (("TOKEN_ISSUER", issuer), ("TOKEN_AUDIENCE", audience)):
            if value:
                raise ConfigError(variable, "is only used with TOKEN_JWKS_URL")
        return None, None, None
    parts = urlsplit(url)
    loopback = parts.hostname in {"127.0.0.1", "localhost", "::1"}
    if not parts.hostname or not (parts.scheme == "https" or (parts.scheme == "http" and loopback)):
        # Keys fetched over plain HTTP could be swapped by anyone on the path.
        raise ConfigError("TOKEN_JWKS_URL", "must be an https:// URL")
    if issuer is None:
        # A JWKS usually belongs to an issuer serving many applications: pin which one.
        raise ConfigError("TOKEN_ISSUER", "is required with TOKEN_JWKS_URL")
    return url, issuer, audience


# Key sources ----------------------------------------------------------------------------------


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
        if not _KID.fullmatch(kid):
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


def aws_hs256_keys(source: KeySource, timeout_seconds: float = 2.0) -> dict[str, bytes]:
    """Read the keys from SSM (GetParameter WithDecryption) or Secrets Manager.

    The client is made here, on the rare reload, with short timeouts: a visitor is waiting.
    """
    import boto3
    from botocore.config import Config
    from botocore.exceptions import BotoCoreError, ClientError

    config = Config(
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        retries={"mode": "standard", "total_max_attempts": 2},
    )
    variable = "TOKEN_HS256_KEYS_PARAMETER"
    try:
        if source.kind == "ssm":
            ssm: Any = boto3.client("ssm", config=config)
            text = ssm.get_parameter(Name=source.name, WithDecryption=True)["Parameter"]["Value"]
        else:
            secrets: Any = boto3.client("secretsmanager", config=config)
            answer = secrets.get_secret_value(SecretId=source.name)
            if "SecretString" not in answer:
                raise KeysUnavailableError(f"{variable}: the secret has no SecretString")
            text = answer["SecretString"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "error")
        raise KeysUnavailableError(f"{variable}: {source.kind} refused the read ({code})") from None
    except BotoCoreError as error:
        raise KeysUnavailableError(
            f"{variable}: {source.kind} unreachable ({type(error).__name__})"
        ) from None
    try:
        return parse_hs256_keys(text, variable)
    except ConfigError as error:
        raise KeysUnavailableError(str(error)) from None


def http_jwks_fetcher(url: str, timeout_seconds: float) -> Callable[[], Mapping[str, Any]]:
    """A fetcher for a JWKS document over HTTPS, with a timeout and a size cap."""
    import urllib.error
    import urllib.request

    def fetch() -> Mapping[str, Any]:
        request = urllib.request.Request(
            url, headers={"Accept": "application/json", "User-Agent": "pixel-relay"}
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout_seconds) as response:
                body = response.read(JWKS_MAX_BYTES + 1)
        except urllib.error.HTTPError as error:
            error.close()  # it holds the connection open
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
        return document

    return fetch


def jwks_keys(document: Mapping[str, Any]) -> dict[str, PyJWK]:
    """The JWKS's usable signing keys by kid, each bound to its one algorithm.

    RSA (≥ 2048 bits) → RS256 and EC P-256 → ES256; anything else (other types, curves or
    algorithms, encryption keys, private keys, keys without a kid) is skipped.
    """
    import jwt  # ~80 ms with cryptography: imported only once a token is checked

    entries = document.get("keys")
    if not isinstance(entries, list):
        raise KeysUnavailableError("TOKEN_JWKS_URL: the document has no keys list")
    keys: dict[str, PyJWK] = {}
    for entry in entries:
        if not isinstance(entry, dict):
            continue
        kid = entry.get("kid")
        algorithm = _jwk_algorithm(entry)
        if not isinstance(kid, str) or not _KID.fullmatch(kid) or algorithm is None:
            continue
        try:
            key = jwt.PyJWK(entry, algorithm=algorithm)
        except (jwt.PyJWTError, ValueError, TypeError):
            continue
        if algorithm == "RS256" and key.key.key_size < MIN_RSA_BITS:
            continue
        keys[kid] = key
    if not keys:
        raise KeysUnavailableError("TOKEN_JWKS_URL: no RS256 or ES256 signing key in the JWKS")
    return keys


def _jwk_algorithm(entry: Mapping[str, Any]) -> str | None:
    if entry.get("use", "sig") != "sig" or "d" in entry:
        return None
    if entry.get("kty") == "RSA":
        pinned = "RS256"
    elif entry.get("kty") == "EC" and entry.get("crv") == "P-256":
        pinned = "ES256"
    else:
        return None
    return pinned if entry.get("alg", pinned) == pinned else None


_K = TypeVar("_K")


class _KeyCache(Generic[_K]):
    """Keys by kid from one source, kept per container.

    Loaded on first use; reloaded when older than `max_age` or when a token names an unknown
    kid (a rotation), but at most once per `min_interval`, so tokens with random kids cannot
    turn hits into requests to SSM or the JWKS URL. A failed reload keeps the old keys.
    """

    def __init__(
        self,
        load: Callable[[], Mapping[str, _K]],
        max_age: float,
        min_interval: float,
        clock: Callable[[], float],
    ) -> None:
        self._load = load
        self._max_age = max_age
        self._min_interval = min_interval
        self._clock = clock
        self._keys: Mapping[str, _K] | None = None
        self._loaded_at = -math.inf
        self._attempted_at = -math.inf
        self._last_error = ""

    def find(self, kid: str) -> _K | None:
        now = self._clock()
        if self._keys is None:
            keys = self._first_load(now)
        else:
            keys = self._keys
            if now - self._loaded_at >= self._max_age:
                keys = self._reload(now)
        key = keys.get(kid)
        if key is None:
            key = self._reload(now).get(kid)
        return key

    def _first_load(self, now: float) -> Mapping[str, _K]:
        if now - self._attempted_at < _RETRY_WITHOUT_KEYS_SECONDS:
            raise KeysUnavailableError(self._last_error)
        self._attempted_at = now
        try:
            self._keys = self._load()
        except KeysUnavailableError as error:
            self._last_error = str(error)
            raise
        self._loaded_at = now
        return self._keys

    def _reload(self, now: float) -> Mapping[str, _K]:
        assert self._keys is not None
        if now - self._attempted_at < self._min_interval:
            return self._keys
        self._attempted_at = now
        try:
            self._keys = self._load()
        except KeysUnavailableError as error:
            logger.warning("signing keys not reloaded; keeping the old ones: %s", error)
            return self._keys
        self._loaded_at = now
        return self._keys


# Verification -----------------------------------------------------------------------------


class TokenVerifier:
    """Checks a hit's token; one per container (it caches the keys).

    `hs256_keys` and `jwks` replace the configured sources (tests, other secret stores):
    each is called on a (re)load and must raise KeysUnavailableError when it cannot answer.
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
        if hs256_keys is None:
            hs256_keys = _configured_hs256_keys(settings)
        if jwks is None and settings.jwks_url is not None:
            jwks = http_jwks_fetcher(settings.jwks_url, settings.jwks_timeout_seconds)
        ages = (settings.keys_max_age_seconds, settings.keys_refresh_seconds, monotonic)
        self._hs256 = None if hs256_keys is None else _KeyCache(_checked(hs256_keys), *ages)
        self._jwks = None if jwks is None else _KeyCache(_parsed(jwks), *ages)

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
        """PyJWT checks the signature with `algorithm` only, then `iss`/`aud` and presence."""
        import jwt

        asymmetric = algorithm != HS256
        settings = self._settings
        options: Options = {
            # Time claims are checked below against the hit's clock, not PyJWT's.
            "verify_exp": False,
            "verify_nbf": False,
            "verify_iat": False,
            "verify_iss": asymmetric,
            "verify_aud": asymmetric and settings.audience is not None,
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
                audience=settings.audience if asymmetric else None,
            )
        except jwt.InvalidSignatureError:
            raise TokenRefusedError("bad_signature", "signature does not verify") from None
        except jwt.InvalidAlgorithmError:
            raise TokenRefusedError(
                "bad_algorithm", f"algorithm is not allowed; its key takes {algorithm} only"
            ) from None
        except jwt.MissingRequiredClaimError as error:
            claim = error.claim if error.claim in {"exp", ENDPOINT_CLAIM, "iss", "aud"} else ""
            raise TokenRefusedError("missing_claim", f"lacks the {claim} claim") from None
        except jwt.InvalidIssuerError:
            raise TokenRefusedError("wrong_issuer", "comes from another issuer") from None
        except jwt.InvalidAudienceError:
            raise TokenRefusedError("wrong_audience", "was issued for another audience") from None
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


def _configured_hs256_keys(settings: SigningSettings) -> Callable[[], Mapping[str, bytes]] | None:
    source = settings.hs256_keys_source
    if source is not None:
        return lambda: aws_hs256_keys(source)
    if settings.hs256_keys:
        return lambda: settings.hs256_keys
    return None


def _checked(load: Callable[[], Mapping[str, bytes]]) -> Callable[[], Mapping[str, bytes]]:
    """Injected loaders get the same length check as configured keys."""

    def checked() -> Mapping[str, bytes]:
        keys = load()
        for kid, secret in keys.items():
            if len(secret) < MIN_HS256_KEY_BYTES:
                raise KeysUnavailableError(
                    f"HS256 key {kid[:128]!r} is shorter than {MIN_HS256_KEY_BYTES} bytes"
                )
        return keys

    return checked


def _parsed(fetch: Callable[[], Mapping[str, Any]]) -> Callable[[], Mapping[str, PyJWK]]:
    return lambda: jwks_keys(fetch())


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
