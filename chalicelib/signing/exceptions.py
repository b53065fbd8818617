"""What signing raises. Its own small module: the pixel catches these on every hit, and
importing them must not load the key readers or PyJWT."""

from __future__ import annotations

__all__ = ["KeysUnavailableError", "TokenRefusedError"]


class TokenRefusedError(ValueError):
    """When a token does not authorize this hit.

    `code` is a short slug for metrics; str() is safe to show a browser: it never holds a
    secret, the token or a claim value.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class KeysUnavailableError(RuntimeError):
    """When no keys could be loaded (SSM, Secrets Manager or the JWKS URL failed or holds junk).

    Not the client's fault: answer 503 as for a queue outage. The message names the source and
    the problem, never a key.
    """
