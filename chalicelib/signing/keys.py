"""Signing keys by kid: where they are read from, and when they are read again.

The reading is the libraries': SSM and Secrets Manager through Powertools' parameters
utility, a JWKS through PyJWT's `PyJWKClient` (chalicelib/signing/jwks.py), each with its
cache and `max_age` (TOKEN_KEYS_MAX_AGE_SECONDS). What they lack is `KeyRing`'s policy: a
token naming an unknown kid (a rotation) forces a read at most once per
TOKEN_KEYS_REFRESH_SECONDS, so random kids cannot turn hits into requests to SSM or the
JWKS URL; and a failed read keeps the keys already held instead of failing every hit.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final, Generic, TypeVar

from chalicelib.env import ConfigError
from chalicelib.signing.exceptions import KeysUnavailableError
from chalicelib.signing.settings import MIN_HS256_KEY_BYTES, KeySource, parse_hs256_keys

if TYPE_CHECKING:
    from aws_lambda_powertools.utilities.parameters import SecretsProvider, SSMProvider

__all__ = ["Expiring", "KeyRing", "ParameterKeys", "checked_hs256_keys"]

# With no keys at all, a failing source is asked again at most this often.
RETRY_WITHOUT_KEYS_SECONDS: Final = 1.0
_VARIABLE: Final = "TOKEN_HS256_KEYS_PARAMETER"

logger = logging.getLogger(__name__)

_K = TypeVar("_K")
# read(refresh) -> keys by kid. Without `refresh` the source may answer from its cache while
# that is fresh; it returns the very same mapping until it has read the source again.
KeyReader = Callable[[bool], Mapping[str, _K]]


class KeyRing(Generic[_K]):
    """Keys by kid from one source, kept per container (see the module's docstring)."""

    def __init__(
        self, read: KeyReader[_K], refresh_interval: float, clock: Callable[[], float]
    ) -> None:
        self._read = read
        self._refresh_interval = refresh_interval
        self._clock = clock
        self._keys: Mapping[str, _K] | None = None
        self._attempted_at = -math.inf  # the last read that reached the source
        self._failed_at = -math.inf
        self._last_error = ""

    def find(self, kid: str) -> _K | None:
        now = self._clock()
        key = self._current(now).get(kid)
        if key is None and now - self._attempted_at >= self._refresh_interval:
            key = self._load(now, refresh=True).get(kid)
        return key

    def _current(self, now: float) -> Mapping[str, _K]:
        if self._keys is None:
            if now - self._attempted_at < RETRY_WITHOUT_KEYS_SECONDS:
                raise KeysUnavailableError(self._last_error)
        elif now - self._failed_at < self._refresh_interval:
            return self._keys  # the source failed lately: the old keys, no new request
        return self._load(now, refresh=False)

    def _load(self, now: float, refresh: bool) -> Mapping[str, _K]:
        try:
            keys = self._read(refresh)
        except KeysUnavailableError as error:
            self._attempted_at = now
            if self._keys is None:
                self._last_error = str(error)
                raise
            self._failed_at = now
            logger.warning("signing keys not reloaded; keeping the old ones: %s", error)
            return self._keys
        if refresh or keys is not self._keys:  # the source was read, not its cache
            self._attempted_at = now
        self._keys = keys
        return keys


class Expiring(Generic[_K]):
    """A plain loader (injected keys, TOKEN_HS256_KEYS) as a reader with a `max_age`."""

    def __init__(
        self, load: Callable[[], Mapping[str, _K]], max_age: float, clock: Callable[[], float]
    ) -> None:
        self._load = load
        self._max_age = max_age
        self._clock = clock
        self._keys: Mapping[str, _K] | None = None
        self._loaded_at = -math.inf

    def __call__(self, refresh: bool) -> Mapping[str, _K]:
        now = self._clock()
        if self._keys is None or refresh or now - self._loaded_at >= self._max_age:
            self._keys = self._load()
            self._loaded_at = now
        return self._keys


class ParameterKeys:
    """HS256 keys from an SSM parameter (SecureString) or a Secrets Manager secret, read
    through Powertools' parameters utility with its cache.

    The provider (and its boto3 client) is made on the first read, with short timeouts: a
    visitor is waiting.
    """

    def __init__(self, source: KeySource, max_age_seconds: int, timeout_seconds: float = 2.0):
        self._source = source
        self._max_age = max_age_seconds
        self._timeout = timeout_seconds
        self._provider: SSMProvider | SecretsProvider | None = None
        self._raw: object = None
        self._keys: Mapping[str, bytes] = {}

    def __call__(self, refresh: bool) -> Mapping[str, bytes]:
        value = self._get(refresh)
        if value is self._raw:
            return self._keys  # Powertools answered from its cache: parsed already
        if not isinstance(value, str):
            raise KeysUnavailableError(f"{_VARIABLE}: the secret has no SecretString")
        try:
            keys = parse_hs256_keys(value, _VARIABLE)
        except ConfigError as error:
            raise KeysUnavailableError(str(error)) from None
        self._raw, self._keys = value, keys
        return keys

    def _get(self, refresh: bool) -> Any:
        from aws_lambda_powertools.utilities.parameters import (
            GetParameterError,
            SecretsProvider,
            SSMProvider,
        )
        from botocore.config import Config
        from botocore.exceptions import BotoCoreError, ClientError

        kind, name = self._source.kind, self._source.name
        try:
            if self._provider is None:
                config = Config(
                    connect_timeout=self._timeout,
                    read_timeout=self._timeout,
                    retries={"mode": "standard", "total_max_attempts": 2},
                )
                self._provider = (
                    SSMProvider(boto_config=config)
                    if kind == "ssm"
                    else SecretsProvider(boto_config=config)
                )
            if isinstance(self._provider, SSMProvider):
                return self._provider.get(
                    name, max_age=self._max_age, force_fetch=refresh, decrypt=True
                )
            return self._provider.get(name, max_age=self._max_age, force_fetch=refresh)
        except (GetParameterError, BotoCoreError) as error:
            # Powertools raises GetParameterError inside its `except`: the AWS error is its
            # context. Its message may quote the request, so only the error's code is shown.
            cause = error.__context__ if isinstance(error, GetParameterError) else error
            if isinstance(cause, ClientError):
                code = cause.response.get("Error", {}).get("Code", "error")
                raise KeysUnavailableError(
                    f"{_VARIABLE}: {kind} refused the read ({code})"
                ) from None
            reason = type(cause).__name__ if cause is not None else "error"
            raise KeysUnavailableError(f"{_VARIABLE}: {kind} unreachable ({reason})") from None


def checked_hs256_keys(
    load: Callable[[], Mapping[str, bytes]],
) -> Callable[[], Mapping[str, bytes]]:
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
