"""Query text that is what its bytes claim, checked before any rule reads it."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Final

from chalicelib.hits import HitRefusedError

REPLACEMENT_CHARACTER: Final = "\ufffd"


def check_encoding(params: Mapping[str, Sequence[str]]) -> None:
    """Refuse a name or value that is not what UTF-8 bytes decode to.

    Neither entry point hands the app the raw query string: `chalice local` decodes it with
    Python's `parse_qs`, and API Gateway (REST) sends only decoded parameters. Both turn
    bytes that are not UTF-8 (`%FF`, or `%ED%A0%80`, a UTF-8-encoded lone surrogate) into
    U+FFFD; a JSON event could also carry a lone surrogate as `\\ud800`. Either way the text
    is not what the page sent, so the hit is refused, naming the parameter. An honest
    U+FFFD (`%EF%BF%BD`) cannot be told apart and is refused too: no page means to send one.
    """
    for name, values in params.items():
        if not _faithful(name):
            raise HitRefusedError(name, "name is not valid UTF-8 (or U+FFFD)", "bad_encoding")
        for value in values:
            if not _faithful(value):
                raise HitRefusedError(name, "not valid UTF-8 (or U+FFFD)", "bad_encoding")


def _faithful(text: str) -> bool:
    if REPLACEMENT_CHARACTER in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate
        return False
    return True
