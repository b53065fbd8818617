"""AWS's documented limits that botocore's model does not carry, one module per service
(its `LIMITS`: (service, operation) -> `Limit`), found by listing this package: a new
service's limits are a new module, and no file names a service it is not about.

`devtools.standins.strict` applies them after the model's own rules."""

from __future__ import annotations

import functools
import importlib
import pkgutil

from devtools.standins.limits.base import Limit, Params


@functools.cache
def all_limits() -> dict[tuple[str, str], Limit]:
    found: dict[tuple[str, str], Limit] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            found.update(importlib.import_module(f"{__name__}.{module.name}").LIMITS)
    return found


def documented_problems(service: str, name: str, params: Params) -> list[str]:
    """What AWS's documentation (not its model) says is wrong with the request."""
    limit = all_limits().get((service, name))
    return [] if limit is None else list(limit.check(params))
