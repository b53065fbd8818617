"""Mint a pixel-relay signed-hit token (HS256, PyJWT) for one visitor's endpoint id.

Run it on your backend, never in the browser: whoever holds the secret can write to any
endpoint. Render the token into the page for the logged-in visitor (docs/signed-hits.md).

    PIXEL_TOKEN_SECRET=... python examples/mint_token.py --kid 2026-11 \\
        --endpoint-id ep-1 [--user-id user-1] [--ttl 3600] [--audience shop-prod]

The secret comes from the environment, not the command line, so it stays out of `ps` and
shell history. It is the string stored under the kid in TOKEN_HS256_KEYS(_PARAMETER).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jwt


def mint_token(
    secret: str,
    kid: str,
    endpoint_id: str,
    user_id: str | None = None,
    ttl_seconds: int = 3600,
    now: float | None = None,
    audience: str | None = None,
) -> str:
    """A token binding `endpoint_id` (claim `eid`) and `user_id` (`sub`) until now + ttl,
    and to one site (`aud`) when the pixel sets TOKEN_AUDIENCE."""
    if len(secret.encode()) < 32:
        raise ValueError("the secret must be at least 32 bytes (RFC 7518, section 3.2)")
    issued = int(time.time() if now is None else now)
    claims: dict[str, str | int] = {"eid": endpoint_id, "iat": issued, "exp": issued + ttl_seconds}
    if user_id is not None:
        claims["sub"] = user_id
    if audience is not None:
        claims["aud"] = audience
    return jwt.encode(claims, secret, algorithm="HS256", headers={"kid": kid})


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kid", required=True, help="the key id the secret is stored under")
    parser.add_argument("--endpoint-id", required=True)
    parser.add_argument("--user-id")
    parser.add_argument("--ttl", type=int, default=3600, help="seconds until it expires")
    parser.add_argument("--audience", help="the pixel's TOKEN_AUDIENCE, when it sets one")
    args = parser.parse_args(argv)
    secret = os.environ.get("PIXEL_TOKEN_SECRET", "")
    if not secret:
        print("set PIXEL_TOKEN_SECRET to the signing secret", file=sys.stderr)
        return 2
    try:
        token = mint_token(
            secret, args.kid, args.endpoint_id, args.user_id, args.ttl, audience=args.audience
        )
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
