"""Reading the environment: `Reader` and `ConfigError`, the leaf every settings type uses.

Chalice injects a stage's `environment_variables` from `.chalice/config.json`. Each feature
parses its own variables into a frozen dataclass with a `Reader`; a wrong value fails fast
with a message naming the variable, so a misconfigured stage breaks at its first request
rather than quietly losing events. This module imports nothing else of chalicelib but the
quota constants (`limits`), so every module can import it without a cycle.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Protocol

from chalicelib import limits

_NAME = re.compile(r"^[A-Za-z0-9_.:-]+$")
# SQS's queue name rule (its API model gives QueueName no pattern): 1-80 characters, and a
# FIFO queue's name ends in .fifo.
_QUEUE_NAME = re.compile(r"[A-Za-z0-9_-]{1,80}|[A-Za-z0-9_-]{1,75}\.fifo")
_TRUE = {"true", "1", "yes", "on"}
_FALSE = {"false", "0", "no", "off", ""}


class ConfigError(ValueError):
    """When an environment variable is missing or has a value pixel-relay cannot use."""

    def __init__(self, variable: str, problem: str) -> None:
        super().__init__(f"{variable}: {problem}")
        self.variable = variable


class Rule(Protocol):
    """A check a value must pass (`chalicelib.service_models.ModelRule` is one)."""

    def problem(self, value: str) -> str | None:
        """Why `value` is refused, or None."""
        ...


class Reader:
    """Typed access to environment variables, with errors that name the variable."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ

    def _raw(self, variable: str, default: str | None = None) -> str:
        value = self._environ.get(variable, default)
        if value is None or not value.strip():
            if default is not None:
                return default
            raise ConfigError(variable, "is required; set it in .chalice/config.json")
        return value.strip()

    def name(self, variable: str) -> str:
        value = self._raw(variable)
        if not _NAME.match(value) or len(value) > 256:
            raise ConfigError(variable, "must be letters, digits and _ . : - only")
        return value

    def queue_name(self, variable: str) -> str:
        value = self._raw(variable)
        if not _QUEUE_NAME.fullmatch(value):
            raise ConfigError(
                variable,
                "must be an SQS queue name: 1-80 of A-Z a-z 0-9 _ - (a FIFO queue's ends in .fifo)",
            )
        return value

    def modelled(self, variable: str, rule: Rule, default: str | None = None) -> str:
        """A resource name the service's model constrains (`rule`); `default` when unset."""
        value = self._environ.get(variable, "").strip() or default
        if value is None:
            raise ConfigError(variable, "is required; set it in .chalice/config.json")
        problem = rule.problem(value)
        if problem is not None:
            raise ConfigError(variable, problem)
        return value

    def names(self, variable: str, default: str = "") -> frozenset[str]:
        raw = self._environ.get(variable, default)
        items = [item.strip() for item in raw.split(",")]
        if any(not item for item in items) and raw.strip():
            raise ConfigError(variable, "has an empty name; separate names with single commas")
        return frozenset(item for item in items if item)

    def attribute_names(self, variable: str) -> frozenset[str]:
        names = self.names(variable)
        for name in names:
            if len(name) > limits.ATTRIBUTE_KEY_LENGTH:
                raise ConfigError(
                    variable,
                    f"names at most {limits.ATTRIBUTE_KEY_LENGTH} characters (Pinpoint's limit)",
                )
        return names

    def delivery_timeout(self) -> int:
        """The read timeout of each call to a destination, shared by all of them."""
        return self.integer("DELIVERY_TIMEOUT_SECONDS", default=10, low=1, high=30)

    def boolean(self, variable: str, default: bool) -> bool:
        value = self._environ.get(variable, "").strip().lower()
        if not value:
            return default
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ConfigError(variable, "must be true or false")

    def integer(self, variable: str, default: int, low: int, high: int) -> int:
        value = self._environ.get(variable, "").strip()
        number = default if not value else self._parse_int(variable, value)
        if not low <= number <= high:
            raise ConfigError(variable, f"must be between {low} and {high}")
        return number

    def optional_integer(self, variable: str, low: int, high: int) -> int | None:
        if not self._environ.get(variable, "").strip():
            return None
        return self.integer(variable, default=low, low=low, high=high)

    @staticmethod
    def _parse_int(variable: str, value: str) -> int:
        try:
            return int(value)
        except ValueError:
            raise ConfigError(variable, "must be a whole number") from None
