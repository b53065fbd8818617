"""What a service's documented limits are made of: the words AWS says them in and the check,
and the units and helpers the checks share. Development tooling only."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

Params = Mapping[str, Any]
KIB: Final = 1024
MIB: Final = 1024 * 1024


@dataclass(frozen=True)
class Limit:
    """One documented rule for one operation: the words it comes from, and the check."""

    source: str  # where AWS says it
    check: Callable[[Params], Iterable[str]]


def too_many(params: Params, member: str, most: int, what: str) -> list[str]:
    count = len(params.get(member) or [])
    return [f"{member}: {count} {what}; at most {most} a request"] if count > most else []


def as_bytes(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray):
        return bytes(value)
    return str(value or "").encode()
