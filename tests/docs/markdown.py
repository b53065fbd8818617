"""Reading the tables of the project's markdown documents, for the tests that hold a document
to the tree it describes."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"

_CODE = re.compile(r"`([^`]+)`")


def cells(line: str) -> list[str]:
    """The cells of one table row, `|` inside backticks or escaped as `\\|` kept."""
    body = line.strip().removeprefix("|").removesuffix("|")
    found: list[str] = []
    current: list[str] = []
    in_code = False
    index = 0
    while index < len(body):
        char = body[index]
        if char == "\\" and body[index + 1 : index + 2] == "|":
            current.append("|")
            index += 2
            continue
        if char == "`":
            in_code = not in_code
        if char == "|" and not in_code:
            found.append("".join(current).strip())
            current = []
        else:
            current.append(char)
        index += 1
    found.append("".join(current).strip())
    return found


def tables(text: str, first_header: str) -> list[list[dict[str, str]]]:
    """Every table whose first header cell is `first_header`: its rows, each a dict from
    header to cell."""
    found: list[list[dict[str, str]]] = []
    lines = text.splitlines()
    for number, line in enumerate(lines):
        if not line.startswith("|") or cells(line)[0] != first_header:
            continue
        header = cells(line)
        rows: list[dict[str, str]] = []
        for row in lines[number + 2 :]:
            if not row.startswith("|"):
                break
            values = cells(row)
            assert len(values) == len(header), f"a row has {len(values)} cells: {row}"
            rows.append(dict(zip(header, values, strict=True)))
        found.append(rows)
    return found


def table(text: str, first_header: str) -> list[dict[str, str]]:
    """The rows of the first table whose first header cell is `first_header`. Fails when
    there is none: a renamed column must be seen, not read as an empty table."""
    found = tables(text, first_header)
    assert found, f"no table whose first column is {first_header!r}"
    return found[0]


def code_spans(cell: str) -> list[str]:
    """What a cell holds in backticks: the names and paths it states."""
    return _CODE.findall(cell)
