"""What the hit tests share: a query string parsed as the pixel parses a hit, at a fixed
time, with a fixed generated event id."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs

import pytest

from chalicelib.events import Event
from chalicelib.hits import AcceptedHit, HitPolicy, HitRefusedError, parse_hit

NOW = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)
BASE = "event=purchase&endpoint_id=ep-1"


def accept(query: str, **policy: Any) -> AcceptedHit:
    params = parse_qs(query, keep_blank_values=True)
    return parse_hit(params, HitPolicy(**policy), NOW, make_event_id=lambda: "generated-id")


def event_of(query: str, **policy: Any) -> Event:
    return accept(query, **policy).event


def refusal(query: str, **policy: Any) -> str:
    """The reason the pixel refuses the hit with (the test fails if it is accepted)."""
    with pytest.raises(HitRefusedError) as caught:
        accept(query, **policy)
    return str(caught.value)
