"""Amazon EventBridge's documented limits beyond botocore's model (whose PutEvents carries
no size constraint at all)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from devtools.standins.limits.base import MIB, Limit, Params


def entry_size(entry: Mapping[str, Any]) -> int:
    """An entry's size as "Calculating PutEvents event entry size" counts it: Time 14
    bytes, then the UTF-8 bytes of Source, DetailType, Detail and each resource."""
    size = 14 if entry.get("Time") is not None else 0
    for member in ("Source", "DetailType", "Detail"):
        size += len(str(entry.get(member) or "").encode())
    return size + sum(len(str(r).encode()) for r in entry.get("Resources") or [])


def _entries(params: Params) -> list[str]:
    total = sum(entry_size(entry) for entry in params.get("Entries") or [])
    # "the total entry size must be less than 1MB"
    return [f"Entries: {total} bytes in all; must be less than 1 MB"] if total >= MIB else []


LIMITS: Final = {
    ("events", "PutEvents"): Limit(
        "EventBridge PutEvents: 'the total entry size must be less than 1MB', sized as"
        " 'Calculating PutEvents event entry size' says",
        _entries,
    ),
}
