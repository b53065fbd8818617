"""Which destinations exist, found by listing this package, and their plug-ins, imported
only when asked for.

Every module or package of `chalicelib/destinations/` is a destination, but `base` (the
interface), `registry` (this) and any whose name starts with `_`. Its name is the module's,
with - for _, so DESTINATIONS is checked without importing a destination, and only the
configured ones are ever imported: an unused destination costs no cold-start time. The
module exports `PLUGIN`, its `base.DestinationPlugin` subclass.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING, Final

from chalicelib.env import ConfigError

if TYPE_CHECKING:
    from chalicelib.destinations.base import DestinationPlugin

PACKAGE: Final = "chalicelib.destinations"
_NOT_DESTINATIONS: Final = frozenset({"base", "registry"})

# DESTINATIONS when a stage sets none: Amazon Pinpoint reached end of support on 2026-10-30,
# so a new stage records events in Connect Customer Profiles (pinpoint stays a choice).
DEFAULT_DESTINATIONS: Final = "customer-profiles"


def name_of(module: str) -> str:
    return module.rsplit(".", 1)[-1].replace("_", "-")


def module_of(name: str) -> str:
    return f"{PACKAGE}.{name.replace('-', '_')}"


def known() -> tuple[str, ...]:
    """Every destination's name, sorted: the order `make policies` writes statements in,
    whatever the order of DESTINATIONS."""
    return tuple(
        sorted(
            name_of(module)
            for module in _modules()
            if module not in _NOT_DESTINATIONS and not module.startswith("_")
        )
    )


def _modules() -> Iterator[str]:
    """The modules and packages of this package, by listing its folders (what
    pkgutil.iter_modules does for a package on disk, as the Lambda bundle is, without
    importing pkgutil on the pixel's cold start)."""
    package = importlib.import_module(PACKAGE)
    for folder in package.__path__:
        with os.scandir(folder) as entries:
            for entry in entries:
                stem, extension = os.path.splitext(entry.name)
                if entry.is_file() and extension == ".py" and stem.isidentifier():
                    yield stem
                elif entry.is_dir() and os.path.isfile(os.path.join(entry.path, "__init__.py")):
                    yield entry.name


def parse_names(raw: str) -> tuple[str, ...]:
    """DESTINATIONS: names of known destinations, comma-separated, each once."""
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


def configured_names(environ: Mapping[str, str]) -> tuple[str, ...]:
    """The stage's DESTINATIONS (the default when unset), in `known()` order."""
    chosen = parse_names(environ.get("DESTINATIONS", DEFAULT_DESTINATIONS))
    return tuple(name for name in known() if name in chosen)


def plugin(name: str) -> type[DestinationPlugin[object]]:
    """The named destination's plug-in, importing its module (and only it)."""
    from chalicelib.destinations.base import DestinationPlugin

    if name not in known():
        raise KeyError(f"no destination named {name!r}; known: {', '.join(known())}")
    module = module_of(name)
    found = getattr(importlib.import_module(module), "PLUGIN", None)
    if not (isinstance(found, type) and issubclass(found, DestinationPlugin)):
        raise TypeError(f"{module} must export PLUGIN, its DestinationPlugin subclass")
    missing = [
        declared
        for declared in ("name", "service", "variables", "double")
        if not hasattr(found, declared)
    ]
    if missing:
        raise TypeError(f"{module}: PLUGIN must declare {', '.join(missing)}")
    if found.name != name:
        raise TypeError(f"{module}: PLUGIN is named {found.name!r}, its module says {name!r}")
    return found


def configure(
    names: tuple[str, ...], environ: Mapping[str, str]
) -> tuple[DestinationPlugin[object], ...]:
    """The named destinations' plug-ins, each with its own settings read from `environ`
    now, so a wrong one fails at start naming its variable."""
    return tuple(plugin(name).configure(environ) for name in names)
