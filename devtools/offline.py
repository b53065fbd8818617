"""The environment that keeps a process away from AWS: fake credentials, no profile, and
every unconfigured endpoint on a closed loopback port, so a client that was not pointed at a
local server fails at once instead of reaching a real account."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Final

HOST: Final = "127.0.0.1"
REGION: Final = "us-east-1"
# Nothing listens on the discard port.
NOWHERE: Final = f"http://{HOST}:9"
FAKE_AWS: Final[dict[str, str]] = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": REGION,
    "AWS_REGION": REGION,
    "AWS_ENDPOINT_URL": NOWHERE,
    # No profile or config file can add credentials, a role or an endpoint of its own.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "AWS_EC2_METADATA_DISABLED": "true",
}


def isolated_environment(base: Mapping[str, str]) -> dict[str, str]:
    """`base` with fake credentials, no profile, and loopback kept away from any proxy."""
    environment = {k: v for k, v in base.items() if k not in {"AWS_PROFILE", "AWS_ROLE_ARN"}}
    environment.update(FAKE_AWS)
    return without_proxy_for_loopback(environment)


def without_proxy_for_loopback(environment: dict[str, str]) -> dict[str, str]:
    """No proxy from the environment may see requests to loopback servers."""
    for name in ("NO_PROXY", "no_proxy"):
        existing = environment.get(name, "")
        environment[name] = ",".join(filter(None, [existing, HOST, "localhost"]))
    return environment
