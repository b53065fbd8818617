"""Which destinations exist, and each one's description (`SPEC`), loaded by name.

A destination is one module that exports `SPEC`, a `base.DestinationSpec`: its name, its
settings and their parser, its client, its `Destination` and its IAM statements. Its name
is its module's, with - for _ (`customer_profiles` answers to `customer-profiles`), so
DESTINATIONS is checked without importing anything, and only the configured modules are
ever imported: an unused destination costs no cold-start time.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final

from chalicelib.env import ConfigError

if TYPE_CHECKING:
    from chalicelib.destinations.base import Destination, DestinationSpec

# Adding a destination: its module here, in the order `make policies` writes statements.
MODULES: Final = (
    "chalicelib.destinations.pinpoint",
    "chalicelib.destinations.firehose",
    "chalicelib.destinations.eventbridge",
    "chalicelib.destinations.customer_profiles",
    "chalicelib.destinations.kinesis",
)

# DESTINATIONS when a stage sets none: Amazon Pinpoint reached end of support on 2026-10-30,
# so a new stage records events in Connect Customer Profiles (pinpoint stays a choice).
DEFAULT_DESTINATIONS: Final = "customer-profiles"


def name_of(module: str) -> str:
    return module.rsplit(".", 1)[-1].replace("_", "-")


def known() -> tuple[str, ...]:
    """Every destination's name, in `MODULES` order."""
    return tuple(name_of(module) for module in MODULES)


def parse_names(raw: str) -> tuple[str, ...]:
    known_names = known()
    chosen = tuple(dict.fromkeys(name.strip() for name in raw.split(",") if name.strip()))
    if not chosen:
        raise ConfigError("DESTINATIONS", f"name at least one of {', '.join(known_names)}")
    unknown = [name for name in chosen if name not in known_names]
    if unknown:
        raise ConfigError(
            "DESTINATIONS", f"unknown {', '.join(unknown)}; known: {', '.join(known_names)}"
        )
    return chosen


def spec(name: str) -> DestinationSpec[Any, Any]:
    """The named destination's `SPEC`, importing its module (and only it)."""
    from chalicelib.destinations.base import DestinationSpec

    modules = {name_of(module): module for module in MODULES}
    if name not in modules:
        raise KeyError(f"no destination named {name!r}; known: {', '.join(modules)}")
    module = modules[name]
    found = getattr(importlib.import_module(module), "SPEC", None)
    if not isinstance(found, DestinationSpec) or found.name != name:
        raise TypeError(f"{module} must export SPEC, the DestinationSpec named {name!r}")
    return found


def settings_for(names: tuple[str, ...], environ: Mapping[str, str]) -> dict[str, Any]:
    """Each destination's own settings, parsed now so a wrong one fails at start."""
    return {name: spec(name).from_env(environ) for name in names}


def create(name: str, settings: Any) -> Destination:
    return spec(name).create(settings)
