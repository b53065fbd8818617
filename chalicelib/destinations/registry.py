"""Which destinations exist, and how one is built from the stage's settings.

A destination is a module in this package with a `Settings` dataclass (`from_env`, failing
with the variable's name) and `create(settings) -> Destination`. Only the configured ones
are imported, so an unused destination costs no cold-start time.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from types import ModuleType
from typing import TYPE_CHECKING, Any

from chalicelib.env import ConfigError

if TYPE_CHECKING:
    from chalicelib.destinations.base import Destination

MODULES = {
    "pinpoint": "chalicelib.destinations.pinpoint",
    "firehose": "chalicelib.destinations.firehose",
    "eventbridge": "chalicelib.destinations.eventbridge",
    "customer-profiles": "chalicelib.destinations.customer_profiles",
}


def parse_names(raw: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    if not names:
        raise ConfigError("DESTINATIONS", f"name at least one of {', '.join(MODULES)}")
    unknown = [name for name in names if name not in MODULES]
    if unknown:
        raise ConfigError(
            "DESTINATIONS", f"unknown {', '.join(unknown)}; known: {', '.join(MODULES)}"
        )
    return names


def _module(name: str) -> ModuleType:
    return importlib.import_module(MODULES[name])


def settings_for(names: tuple[str, ...], environ: Mapping[str, str]) -> dict[str, Any]:
    """Each destination's own settings, parsed now so a wrong one fails at start."""
    return {name: _module(name).Settings.from_env(environ) for name in names}


def create(name: str, settings: Any) -> Destination:
    destination: Destination = _module(name).create(settings)
    return destination
