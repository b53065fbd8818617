"""Amazon Connect Customer Profiles' documented limits beyond botocore's model."""

from __future__ import annotations

from typing import Final

from devtools.standins.limits.base import KIB, Limit, Params


def _object_size(params: Params) -> list[str]:
    # "A single profile object can be up to 250 KB" (customer-profiles-terminology); the
    # model's 256,000-character maximum on Object is checked above.
    objects = [params.get("Object")] + [i.get("Object") for i in params.get("Items") or []]
    return [
        f"Object: {len(str(o).encode())} bytes; a profile object may have 250 KB"
        for o in objects
        if o is not None and len(str(o).encode()) > 250 * KIB
    ]


SOURCE: Final = "Customer Profiles terminology: 'A single profile object can be up to 250 KB'"
LIMITS: Final = {
    ("customer-profiles", "PutProfileObject"): Limit(SOURCE, _object_size),
    ("customer-profiles", "BatchPutProfileObject"): Limit(SOURCE, _object_size),
}
