"""A destination plug-in's hooks into the development tools, resolved here and only here.

A plug-in (`chalicelib.destinations.base.DestinationPlugin`) names its dry-run double, its
`ops check` probe and its deploy-time CloudFormation by dotted path, so chalicelib never
imports development tooling and nothing finds them by naming convention. A path is a module
(`double`) or "module:attribute" (`probe`, `resources`). Development tooling only.
"""

from __future__ import annotations

import importlib
from types import ModuleType
from typing import Any


class HookError(LookupError):
    """When a plug-in's hook names a module or attribute that does not exist."""


def module(path: str, owner: str) -> ModuleType:
    """The module `path` names; `owner` (the destination) is named in the error."""
    try:
        return importlib.import_module(path)
    except ModuleNotFoundError as error:
        if error.name is None or not path.startswith(error.name):
            raise
        file = path.replace(".", "/") + ".py"
        raise HookError(f"{owner}: its plug-in names {path}: add {file}") from None


def attribute(path: str, owner: str) -> Any:
    """What "module:attribute" names."""
    module_path, _, name = path.partition(":")
    if not name:
        raise HookError(f"{owner}: {path!r} must be module:attribute")
    found = getattr(module(module_path, owner), name, None)
    if found is None:
        raise HookError(f"{owner}: {module_path} has no {name} (its plug-in names {path})")
    return found
